"""Request texts kept for endpoints that opted in: written with the request's usage and audit
records, read back for an audit export, deleted once expired."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select

from modelport.store import tables
from modelport.store.limits import clip_row
from modelport.store.records import RequestText
from modelport.store.times import utc

_t = tables.request_texts
_BATCH = 500


class TextStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, texts: Sequence[RequestText], conn: Connection | None = None) -> None:
        if not texts:
            return
        rows = [clip_row(_t, dataclasses.asdict(t)) for t in texts]
        if conn is not None:
            conn.execute(insert(_t), rows)
            return
        with self.engine.begin() as own:
            own.execute(insert(_t), rows)

    def kept(self, now: datetime) -> Iterator[RequestText]:
        """Every text not yet expired, oldest first."""
        after = 0
        while True:
            query = select(_t).where(_t.c.id > after, _t.c.expires_at > now).order_by(_t.c.id).limit(_BATCH)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield _text(row)
            if len(rows) < _BATCH:
                return
            after = int(rows[-1].id)

    def by_digest(self, digests: Iterable[str], now: datetime) -> dict[str, RequestText]:
        wanted = list(set(digests))
        out: dict[str, RequestText] = {}
        for i in range(0, len(wanted), _BATCH):
            query = select(_t).where(_t.c.digest.in_(wanted[i : i + _BATCH]), _t.c.expires_at > now)
            with self.engine.connect() as conn:
                out.update((row.digest, _text(row)) for row in conn.execute(query))
        return out

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_t)).scalar_one())

    def purge(self, now: datetime) -> int:
        """Delete the texts whose retention has passed."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(_t).where(_t.c.expires_at <= now)).rowcount)


def _text(row: object) -> RequestText:
    values = row._asdict()  # type: ignore[attr-defined]
    values.pop("id")
    values["at"], values["expires_at"] = utc(values["at"]), utc(values["expires_at"])
    return RequestText(**values)
