"""The control plane's store: endpoints, model revisions and replicas on SQLAlchemy Core.

SQLite (one file in the data directory, owner-only, WAL) by default, PostgreSQL by URL.
Every method is one short transaction, or joins the one a caller shares (`transaction`,
store/session.py: an admin call and its audit record); nothing keeps a session open between
calls, so the API's worker threads and the control loop can share one `Store`. `Store.open`
brings the schema to the newest Alembic migration first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.engine import Connection, RowMapping, make_url
from sqlalchemy.exc import IntegrityError

from modelport.store import session, tables
from modelport.store.audit import AuditStore
from modelport.store.errors import AlreadyExists, NotFound, Stale, StoreBusy, StoreError
from modelport.store.key_store import KeyStore
from modelport.store.records import (
    EndpointFields,
    EndpointRecord,
    ModelRevision,
    ReplicaRecord,
    ScalingEvent,
)
from modelport.store.runs import RunStore
from modelport.store.scaling import ScalingEventStore, add_event
from modelport.store.texts import TextStore
from modelport.store.times import utc as _utc
from modelport.store.usage import UsageStore

__all__ = ["AlreadyExists", "NotFound", "Stale", "Store", "StoreBusy", "StoreError"]

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x6D6F64656C706F72  # "modelpor": the advisory lock id of the control plane
_ENDPOINT_FIELDS = {f.name for f in dataclasses.fields(EndpointRecord)}
_IMMUTABLE = {"id", "namespace", "name", "created_at"}


def migrate(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keys = KeyStore(engine)
        self.usage = UsageStore(engine)
        self.audit = AuditStore(engine)
        self.runs = RunStore(engine)
        self.texts = TextStore(engine)
        # called with each scaling event once stored (the control plane counts them in /metrics)
        self.event_listeners: list[Callable[[EndpointRecord, ScalingEvent], None]] = []
        self.scaling_events = ScalingEventStore(engine)
        self._claim: Connection | int | None = None  # what holds the control-plane lock

    def claim(self) -> None:
        """Become the one control plane reconciling this store, or raise `StoreBusy`.

        Two control planes on one store would each start every replica. The lock dies with
        the process (a flock beside the SQLite file; a PostgreSQL advisory lock held by a
        session), so a SIGKILLed control plane never blocks its successor.
        """
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            fd = os.open(f"{url.database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreBusy(f"another control plane is using {url.database}") from None
            self._claim = fd
            return
        conn = self.engine.connect()
        if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}).scalar():
            conn.close()
            raise StoreBusy(f"another control plane is using {url.render_as_string(hide_password=True)}")
        conn.commit()
        self._claim = conn

    @classmethod
    def open(cls, url: str) -> Store:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database or "")
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # it holds endpoint secrets
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        migrate(engine)
        return cls(engine)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """The block's store calls as one transaction (joining one already shared by the caller)."""
        return session.transaction(self.engine)

    def close(self) -> None:
        if isinstance(self._claim, int):
            os.close(self._claim)
        elif self._claim is not None:
            self._claim.close()
        self._claim = None
        self.engine.dispose()

    # -- endpoints ---------------------------------------------------------------------------
    def create_endpoint(
        self, fields: EndpointFields, revision: ModelRevision, now: datetime
    ) -> EndpointRecord:
        row = {
            **dataclasses.asdict(fields),
            "generation": 1,
            "good_generation": 0,
            "state": "pending",
            "message": "",
            "ready_replicas": 0,
            "target_replicas": 0,
            "desired_replicas": None,
            "update_error": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with session.begin(self.engine) as conn:
                key = conn.execute(insert(tables.endpoints).values(row)).inserted_primary_key
                assert key is not None
                endpoint_id = int(key[0])
                _insert_revision(conn, endpoint_id, 1, revision, now)
        except IntegrityError:
            raise AlreadyExists(f"{fields.namespace}/{fields.name}") from None
        return self.get_endpoint_by_id(endpoint_id)

    def get_endpoint(self, namespace: str, name: str) -> EndpointRecord:
        query = select(tables.endpoints).where(
            tables.endpoints.c.namespace == namespace, tables.endpoints.c.name == name
        )
        with session.connect(self.engine) as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"{namespace}/{name}")
        return _endpoint(row)

    def get_endpoint_by_id(self, endpoint_id: int) -> EndpointRecord:
        with session.connect(self.engine) as conn:
            row = (
                conn.execute(select(tables.endpoints).where(tables.endpoints.c.id == endpoint_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"endpoint {endpoint_id}")
        return _endpoint(row)

    def list_endpoints(self, namespace: str | None = None) -> list[EndpointRecord]:
        query = select(tables.endpoints).order_by(tables.endpoints.c.namespace, tables.endpoints.c.name)
        if namespace is not None:
            query = query.where(tables.endpoints.c.namespace == namespace)
        with session.connect(self.engine) as conn:
            return [_endpoint(row) for row in conn.execute(query).mappings()]

    def update_endpoint(
        self,
        endpoint_id: int,
        now: datetime,
        *,
        if_unchanged_since: datetime | None = None,
        event: ScalingEvent | None = None,
        **changes: Any,
    ) -> EndpointRecord:
        """Partial update. With `if_unchanged_since` (the updated_at the caller read), raise
        `Stale` instead of overwriting a change made meanwhile. An `event` is recorded in the
        same transaction: a scaling change and its record land together or not at all."""
        unknown = set(changes) - (_ENDPOINT_FIELDS - _IMMUTABLE)
        if unknown:
            raise ValueError(f"cannot update endpoint fields {sorted(unknown)}")
        query = update(tables.endpoints).where(tables.endpoints.c.id == endpoint_id)
        if if_unchanged_since is not None:
            query = query.where(tables.endpoints.c.updated_at == if_unchanged_since)
        with session.begin(self.engine) as conn:
            result = conn.execute(query.values(**changes, updated_at=now))
            if event is not None and result.rowcount:
                add_event(conn, event)
        if result.rowcount == 0:
            self.get_endpoint_by_id(endpoint_id)  # NotFound if it is gone
            raise Stale(f"endpoint {endpoint_id} changed meanwhile")
        updated = self.get_endpoint_by_id(endpoint_id)
        if event is not None:
            for listener in self.event_listeners:  # once the event is committed
                session.after_commit(self.engine, functools.partial(listener, updated, event))
        return updated

    def add_revision(self, endpoint_id: int, revision: ModelRevision, now: datetime) -> EndpointRecord:
        """Make `revision` the desired one under a new generation number (never reused, even
        after a rollback moved `generation` back)."""
        with session.begin(self.engine) as conn:
            latest = conn.execute(
                select(func.max(tables.model_revisions.c.generation)).where(
                    tables.model_revisions.c.endpoint_id == endpoint_id
                )
            ).scalar()
            if latest is None:
                raise NotFound(f"endpoint {endpoint_id}")
            generation = int(latest) + 1
            _insert_revision(conn, endpoint_id, generation, revision, now)
            conn.execute(
                update(tables.endpoints)
                .where(tables.endpoints.c.id == endpoint_id)
                .values(generation=generation, updated_at=now)
            )
        return self.get_endpoint_by_id(endpoint_id)

    def get_revision(self, endpoint_id: int, generation: int) -> ModelRevision:
        query = select(tables.model_revisions).where(
            tables.model_revisions.c.endpoint_id == endpoint_id,
            tables.model_revisions.c.generation == generation,
        )
        with session.connect(self.engine) as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"endpoint {endpoint_id} generation {generation}")
        names = {f.name for f in dataclasses.fields(ModelRevision)}
        return ModelRevision(**{k: v for k, v in row.items() if k in names})

    def delete_endpoint(self, endpoint_id: int) -> None:
        with session.begin(self.engine) as conn:
            conn.execute(delete(tables.replicas).where(tables.replicas.c.endpoint_id == endpoint_id))
            conn.execute(
                delete(tables.scaling_events).where(tables.scaling_events.c.endpoint_id == endpoint_id)
            )
            conn.execute(
                delete(tables.model_revisions).where(tables.model_revisions.c.endpoint_id == endpoint_id)
            )
            conn.execute(delete(tables.endpoints).where(tables.endpoints.c.id == endpoint_id))

    # -- replicas ----------------------------------------------------------------------------
    def put_replica(self, replica: ReplicaRecord) -> None:
        row = dataclasses.asdict(replica)
        with session.begin(self.engine) as conn:
            done = conn.execute(
                update(tables.replicas).where(tables.replicas.c.id == replica.id).values(row)
            ).rowcount
            if not done:
                conn.execute(insert(tables.replicas).values(row))

    def list_replicas(self, endpoint_id: int | None = None) -> list[ReplicaRecord]:
        query = select(tables.replicas).order_by(tables.replicas.c.started_at, tables.replicas.c.id)
        if endpoint_id is not None:
            query = query.where(tables.replicas.c.endpoint_id == endpoint_id)
        with session.connect(self.engine) as conn:
            return [_replica(row) for row in conn.execute(query).mappings()]

    def delete_replica(self, replica_id: str) -> None:
        with session.begin(self.engine) as conn:
            conn.execute(delete(tables.replicas).where(tables.replicas.c.id == replica_id))


def _insert_revision(
    conn: Connection, endpoint_id: int, generation: int, revision: ModelRevision, now: datetime
) -> None:
    conn.execute(
        insert(tables.model_revisions).values(
            endpoint_id=endpoint_id, generation=generation, created_at=now, **dataclasses.asdict(revision)
        )
    )


def _endpoint(row: RowMapping) -> EndpointRecord:
    data = dict(row)
    data["created_at"] = _utc(data["created_at"])
    data["updated_at"] = _utc(data["updated_at"])
    return EndpointRecord(**data)


def _replica(row: RowMapping) -> ReplicaRecord:
    data = dict(row)
    for key in ("started_at", "ready_at", "exited_at"):
        data[key] = _utc(data[key])
    return ReplicaRecord(**data)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
