"""The audit trail in the store: append (chained), read in order, verify, export, purge by age.

Appends are serialised (a lock here, and a database lock held to the end of the transaction
that inserts, which may be the caller's): each reads the last record's sequence number and hash,
or the purge anchor, in that transaction. Fields are cut to their columns before they are
hashed (store/limits.py), so an over-long path is stored, and verifies, clipped.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from modelport.ledger.audit_chain import (
    GENESIS,
    AuditEntry,
    StoredAudit,
    VerifyReport,
    chain,
    timestamp,
    verify,
)
from modelport.store import tables
from modelport.store.limits import clip_row

_t = tables.audit_records
_anchor = tables.audit_anchor
_BATCH = 1000
_CHAIN_LOCK = 0x6D6F64656C617564  # "modelaud": the advisory lock that orders appends on PostgreSQL


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()

    def append(self, entries: Sequence[AuditEntry], conn: Connection | None = None) -> list[StoredAudit]:
        """Chain and insert the entries in one transaction (`conn`'s, if given, which then holds
        the chain's lock until it ends: append last, just before committing)."""
        if not entries:
            return []
        if conn is not None:
            return self._append(conn, entries)
        with self.engine.begin() as own:
            return self._append(own, entries)

    def _append(self, conn: Connection, entries: Sequence[AuditEntry]) -> list[StoredAudit]:
        _lock_chain(conn)
        last = conn.execute(select(_t.c.seq, _t.c.hash).order_by(_t.c.seq.desc()).limit(1)).first()
        if last is None:
            last = conn.execute(select(_anchor.c.seq, _anchor.c.hash)).first()
        seq, prev = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)
        records = chain([_fitted(e) for e in entries], seq, prev)  # hashed as stored
        conn.execute(insert(_t), [dataclasses.asdict(r) for r in records])
        return records

    def anchor(self) -> tuple[int, str]:
        """(sequence number, hash) the first kept record links to: (0, GENESIS) before any purge."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_anchor.c.seq, _anchor.c.hash)).first()
        return (int(row.seq), str(row.hash)) if row is not None else (0, GENESIS)

    def records(self, start: datetime | None = None, end: datetime | None = None) -> Iterator[StoredAudit]:
        """Records in sequence order, optionally those at or after `start` and before `end`."""
        after = 0
        while True:
            query = select(_t).where(_t.c.seq > after).order_by(_t.c.seq).limit(_BATCH)
            if start is not None:
                query = query.where(_t.c.at >= timestamp(start))
            if end is not None:
                query = query.where(_t.c.at < timestamp(end))
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield StoredAudit(**row._asdict())
            if len(rows) < _BATCH:
                return
            after = int(rows[-1].seq)

    def verify(self, text_digests: set[str] | None = None) -> VerifyReport:
        """The chain from the anchor on; `text_digests` collects the kept-text digests it holds."""
        seq, digest = self.anchor()
        return verify(self.records(), seq, digest, text_digests)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_t)).scalar_one())

    def purge(self, before: datetime, now: datetime) -> int:
        """Delete the records older than `before`, keeping the last one's hash as the anchor, so
        what is left still verifies. Refuses (ValueError) to purge past a record that does not
        verify: evidence of tampering is not deleted by a retention job."""
        with self._lock, self.engine.begin() as conn:
            _lock_chain(conn)
            cut = timestamp(before)
            last = conn.execute(
                select(_t.c.seq, _t.c.hash).where(_t.c.at < cut).order_by(_t.c.seq.desc()).limit(1)
            ).first()
            if last is None:
                return 0
            report = self.verify()
            if not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= int(last.seq):
                raise ValueError(f"not purging: {report.reason}; run `modelport audit verify`")
            # everything up to the last old record goes: a record out of time order is not kept
            # alone, which would leave a gap the chain could not explain
            deleted = conn.execute(delete(_t).where(_t.c.seq <= last.seq)).rowcount
            conn.execute(delete(_anchor))
            anchor = {"id": 1, "seq": int(last.seq), "hash": str(last.hash), "purged_at": timestamp(now)}
            conn.execute(insert(_anchor).values(anchor))
            return int(deleted)

    def purge_recorded(self, before: datetime, now: datetime, actor: str) -> int:
        """`purge`, then the purge itself on the record (who, how many, up to when)."""
        deleted = self.purge(before, now)
        detail = {"deleted": deleted, "before": timestamp(before)}
        self.append([AuditEntry("admin", actor, "audit purge", "audit", timestamp(now), detail=detail)])
        return deleted


def _fitted(entry: AuditEntry) -> AuditEntry:
    """The entry with each field cut to its column, before it is hashed: the hash covers what is
    stored, and a long path or forwarded address cannot make the insert fail."""
    names = ("at", "kind", "actor", "action", "target", "source", "request_id")
    return dataclasses.replace(entry, **clip_row(_t, {name: getattr(entry, name) for name in names}))


def _lock_chain(conn: Connection) -> None:
    """Hold the chain's end until `conn`'s transaction ends. An append may share a transaction
    that commits later (a usage batch, an admin change), and another append reading the end
    before that commit would reuse its sequence number."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    else:  # SQLite: a write that changes nothing takes the database's write lock now, not at the insert
        conn.execute(update(_anchor).where(_anchor.c.id != _anchor.c.id).values(id=_anchor.c.id))
