"""Scaling events: every change of an endpoint's replica count, newest last, bounded per endpoint."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection

from modelport.store import session, tables
from modelport.store.records import ScalingEvent
from modelport.store.times import utc

_t = tables.scaling_events
KEEP_PER_ENDPOINT = 1000  # older events are pruned as new ones arrive


class ScalingEventStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, endpoint_id: int, limit: int = 100) -> list[ScalingEvent]:
        """The newest `limit` events, oldest first."""
        query = select(_t).where(_t.c.endpoint_id == endpoint_id).order_by(_t.c.id.desc()).limit(limit)
        with session.connect(self.engine) as conn:
            rows = list(conn.execute(query).mappings())
        return [ScalingEvent(**{**row, "at": utc(row["at"])}) for row in reversed(rows)]


def add_event(conn: Connection, event: ScalingEvent) -> None:
    """Insert an event in the caller's transaction, pruning the endpoint's oldest beyond the cap."""
    conn.execute(insert(_t).values({k: v for k, v in dataclasses.asdict(event).items() if k != "id"}))
    cutoff = (
        select(_t.c.id)
        .where(_t.c.endpoint_id == event.endpoint_id)
        .order_by(_t.c.id.desc())
        .offset(KEEP_PER_ENDPOINT)
        .limit(1)
    ).scalar_subquery()
    conn.execute(delete(_t).where(_t.c.endpoint_id == event.endpoint_id, _t.c.id <= cutoff))
