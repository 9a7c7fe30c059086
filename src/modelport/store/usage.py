"""Usage records: one row per request through the gateway, and the sums the API reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, insert, select

from modelport.ledger.series import RequestPoint
from modelport.store import tables
from modelport.store.limits import clip_row
from modelport.store.records import UsageRecord
from modelport.store.times import utc

_t = tables.usage_records
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens")


class UsageStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, records: Sequence[UsageRecord], conn: Connection | None = None) -> None:
        """Insert a batch in one transaction (`conn`'s, if given; the gateway flushes a few times
        a second)."""
        if not records:
            return
        rows = [clip_row(_t, dataclasses.asdict(r)) for r in records]  # a long path must not fail the batch
        if conn is not None:
            conn.execute(insert(_t), rows)
            return
        with self.engine.begin() as own:
            own.execute(insert(_t), rows)

    def by_endpoint(self, key_id: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
        """Requests and tokens per (namespace, endpoint served), optionally for one key / since a time."""
        query = select(
            _t.c.namespace,
            _t.c.served_by,
            func.count().label("requests"),
            func.coalesce(func.sum(_t.c.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(_t.c.completion_tokens), 0).label("completion_tokens"),
        ).group_by(_t.c.namespace, _t.c.served_by)
        if key_id is not None:
            query = query.where(_t.c.key_id == key_id)
        if since is not None:
            query = query.where(_t.c.started_at >= since)
        with self.engine.connect() as conn:
            return [
                {
                    "namespace": row.namespace,
                    "name": row.served_by,
                    "requests": int(row.requests),
                    "prompt_tokens": int(row.prompt_tokens),
                    "completion_tokens": int(row.completion_tokens),
                }
                for row in conn.execute(query.order_by(_t.c.namespace, _t.c.served_by))
            ]

    def totals(self, by: str, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
        """Requests, errors (status >= 400) and tokens of the requests started in [start, end),
        per endpoint that served them (`by="endpoint"`) or per API key (`by="key"`)."""
        groups = [_t.c.namespace, _t.c.served_by] if by == "endpoint" else [_t.c.key_id]
        query = select(
            *groups,
            func.count().label("requests"),
            func.sum(case((_t.c.status >= 400, 1), else_=0)).label("errors"),
            func.coalesce(func.sum(_t.c.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(_t.c.completion_tokens), 0).label("completion_tokens"),
        ).group_by(*groups)
        if start is not None:
            query = query.where(_t.c.started_at >= start)
        if end is not None:
            query = query.where(_t.c.started_at < end)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*groups)).mappings().all()
            units = _unit_sums(conn, groups, start, end)
        out = []
        for row in rows:
            counts = {k: int(row[k] or 0) for k in _COUNTS}
            group = tuple(row[c.name] for c in groups)
            if by == "endpoint":
                out.append({"namespace": row["namespace"], "endpoint": row["served_by"], **counts})
            else:
                out.append({"key_id": row["key_id"], **counts})
            out[-1]["units"] = units.get(group, {})
        return out

    def points(self, namespace: str, endpoint: str, start: datetime, end: datetime) -> list[RequestPoint]:
        """What the analytics series need of each request an endpoint served in [start, end)."""
        query = (
            select(_t.c.started_at, _t.c.status, _t.c.latency_ms, _t.c.first_byte_ms, _t.c.completion_tokens)
            .where(_t.c.namespace == namespace, _t.c.served_by == endpoint)
            .where(_t.c.started_at >= start, _t.c.started_at < end)
            .order_by(_t.c.started_at)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            RequestPoint(utc(r[0]) or start, r.status, r.latency_ms, r.first_byte_ms, r.completion_tokens)
            for r in rows
        ]

    def purge(self, before: datetime) -> int:
        """Delete the records of requests started before `before` (the retention setting)."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(_t).where(_t.c.started_at < before)).rowcount)

    def tokens_since(self, since: datetime) -> dict[str, int]:
        """Tokens (in + out) per key since a time: what a restarted gateway's budgets start from."""
        query = (
            select(_t.c.key_id, func.sum(_t.c.prompt_tokens + _t.c.completion_tokens).label("tokens"))
            .where(_t.c.started_at >= since, _t.c.key_id.is_not(None))
            .group_by(_t.c.key_id)
        )
        with self.engine.connect() as conn:
            return {row.key_id: int(row.tokens or 0) for row in conn.execute(query)}


def _unit_sums(
    conn: Connection, groups: list[Any], start: datetime | None, end: datetime | None
) -> dict[tuple[Any, ...], dict[str, float]]:
    """{group: {unit: total}} of the requests in [start, end) that carry units. Summed here, not
    in SQL: the JSON functions differ between SQLite and PostgreSQL, and only task-route
    requests (images, audio, documents) have units at all."""
    query = select(*groups, _t.c.units).where(_t.c.units.is_not(None))
    if start is not None:
        query = query.where(_t.c.started_at >= start)
    if end is not None:
        query = query.where(_t.c.started_at < end)
    sums: dict[tuple[Any, ...], dict[str, float]] = {}
    for *group, units in conn.execute(query):
        if not isinstance(units, dict):
            continue
        totals = sums.setdefault(tuple(group), {})
        for name, amount in units.items():
            if isinstance(amount, int | float) and not isinstance(amount, bool):
                totals[name] = totals.get(name, 0.0) + float(amount)
    return {group: {k: round(v, 6) for k, v in sorted(t.items())} for group, t in sums.items()}
