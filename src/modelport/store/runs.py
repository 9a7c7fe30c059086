"""Replica runs in the store: opened when a replica's process exists, closed when it is gone."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import Engine, insert, or_, select, update

from modelport.ledger.billing import ReplicaRun
from modelport.store import tables
from modelport.store.times import utc

_t = tables.replica_runs


class RunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, run: ReplicaRun) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(_t).values(dataclasses.asdict(run)))

    def close(self, replica_id: str, ended_at: datetime) -> int:
        """End the replica's open run (a no-op if it has none open); how many were closed."""
        with self.engine.begin() as conn:
            query = update(_t).where(_t.c.replica_id == replica_id, _t.c.ended_at.is_(None))
            return int(conn.execute(query.values(ended_at=ended_at)).rowcount)

    def overlapping(self, start: datetime | None, end: datetime | None) -> list[ReplicaRun]:
        """Runs that were alive at some point of [start, end)."""
        query = select(_t).order_by(_t.c.started_at)
        if end is not None:
            query = query.where(_t.c.started_at < end)
        if start is not None:
            query = query.where(or_(_t.c.ended_at.is_(None), _t.c.ended_at > start))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        out = []
        for row in rows:
            fields = {k: v for k, v in row.items() if k != "id"}
            fields["started_at"] = utc(row["started_at"])
            fields["ended_at"] = utc(row["ended_at"])
            out.append(ReplicaRun(**fields))
        return out
