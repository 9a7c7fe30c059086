"""Per-second billing, as pure functions: replica-seconds inside a time window from replica runs,
their cost at a price per instance-hour, and the cost of a million tokens.

A run is billed from its process's creation to its exit (or to `now` while it runs), clipped to
the window, to the microsecond: no rounding up to the minute or the hour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReplicaRun:
    replica_id: str
    namespace: str
    endpoint: str
    instance_type: str
    instance_size: str
    pid: int
    started_at: datetime
    ended_at: datetime | None  # None while the process runs


def run_seconds(run: ReplicaRun, start: datetime | None, end: datetime | None, now: datetime) -> float:
    """Seconds of `run` inside [start, end) (open sides unbounded), counting a live run to `now`."""
    begin = run.started_at if start is None else max(run.started_at, start)
    finish = run.ended_at or now
    if end is not None:
        finish = min(finish, end)
    return max(0.0, (finish - begin).total_seconds())


def replica_seconds(
    runs: Iterable[ReplicaRun], start: datetime | None, end: datetime | None, now: datetime
) -> dict[tuple[str, str], dict[str, float]]:
    """Per (namespace, endpoint): seconds per (instance type, size) key "type/size"."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for run in runs:
        seconds = run_seconds(run, start, end, now)
        if seconds > 0:
            per = out.setdefault((run.namespace, run.endpoint), {})
            hardware = f"{run.instance_type}/{run.instance_size}"
            per[hardware] = per.get(hardware, 0.0) + seconds
    return out


def cost(seconds: float, price_per_hour: float) -> float:
    return seconds * price_per_hour / 3600.0


def cost_per_million_tokens(cost_usd: float, tokens: int) -> float | None:
    """None where nothing was served (a cost with no tokens has no per-token price)."""
    return cost_usd / tokens * 1_000_000 if tokens else None
