"""API keys in the store: one row per key, holding only the secret's hash."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from modelport.store import session, tables
from modelport.store.errors import AlreadyExists, NotFound
from modelport.store.records import ApiKeyRecord
from modelport.store.times import utc

_MUTABLE = {f.name for f in dataclasses.fields(ApiKeyRecord)} - {"id", "secret_hash", "created_at"}


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, key: ApiKeyRecord) -> ApiKeyRecord:
        try:
            with session.begin(self.engine) as conn:
                conn.execute(insert(tables.api_keys).values(dataclasses.asdict(key)))
        except IntegrityError:
            raise AlreadyExists(f"key {key.id}") from None
        return self.get(key.id)

    def get(self, key_id: str) -> ApiKeyRecord:
        with session.connect(self.engine) as conn:
            row = (
                conn.execute(select(tables.api_keys).where(tables.api_keys.c.id == key_id)).mappings().first()
            )
        if row is None:
            raise NotFound(f"key {key_id}")
        return _key(row)

    def list(self) -> list[ApiKeyRecord]:
        query = select(tables.api_keys).order_by(tables.api_keys.c.created_at, tables.api_keys.c.id)
        with session.connect(self.engine) as conn:
            return [_key(row) for row in conn.execute(query).mappings()]

    def update(self, key_id: str, **changes: Any) -> ApiKeyRecord:
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise ValueError(f"cannot update key fields {sorted(unknown)}")
        with session.begin(self.engine) as conn:
            done = conn.execute(
                update(tables.api_keys).where(tables.api_keys.c.id == key_id).values(**changes)
            ).rowcount
        if not done:
            raise NotFound(f"key {key_id}")
        return self.get(key_id)

    def rotate(self, old_id: str, new: ApiKeyRecord, old_expires_at: datetime) -> ApiKeyRecord:
        """Create `new` and cut the old key's life to the overlap, in one transaction."""
        with session.begin(self.engine) as conn:
            done = conn.execute(
                update(tables.api_keys)
                .where(tables.api_keys.c.id == old_id)
                .values(expires_at=old_expires_at, rotated_to=new.id)
            ).rowcount
            if not done:
                raise NotFound(f"key {old_id}")
            conn.execute(insert(tables.api_keys).values(dataclasses.asdict(new)))
        return self.get(new.id)


def _key(row: RowMapping) -> ApiKeyRecord:
    data = dict(row)
    for name in ("created_at", "expires_at", "revoked_at"):
        data[name] = utc(data[name])
    return ApiKeyRecord(**data)
