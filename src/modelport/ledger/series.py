"""Per-step series of an endpoint's traffic, as a pure function of its usage records and replica
runs: requests/s, error rate, latency and TTFT percentiles, output tokens/s and replicas.

Computed when asked from what the store keeps anyway (one usage record per request, one run per
replica process), so there is no second copy to drift, and the usage retention setting bounds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelport.ledger.billing import ReplicaRun, run_seconds


@dataclass(frozen=True)
class RequestPoint:
    started_at: datetime
    status: int
    latency_ms: float
    first_byte_ms: float | None
    completion_tokens: int


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def series(
    requests: Iterable[RequestPoint],
    runs: Iterable[ReplicaRun],
    start: datetime,
    end: datetime,
    step_s: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """One point per step from `start` (inclusive) to `end` (exclusive), empty steps included."""
    count = max(1, math.ceil((end - start).total_seconds() / step_s))
    buckets: list[list[RequestPoint]] = [[] for _ in range(count)]
    for r in requests:
        index = int((r.started_at - start).total_seconds() // step_s)
        if 0 <= index < count:
            buckets[index].append(r)
    run_list = list(runs)
    out = []
    for i, points in enumerate(buckets):
        t0 = start + timedelta(seconds=i * step_s)
        t1 = min(t0 + timedelta(seconds=step_s), end)
        span = max((t1 - t0).total_seconds(), 1e-9)
        latencies = [p.latency_ms for p in points]
        ttfts = [p.first_byte_ms for p in points if p.first_byte_ms is not None]
        errors = sum(p.status >= 400 for p in points)
        replica_s = sum(run_seconds(run, t0, t1, now) for run in run_list)
        out.append({
            "t": t0.isoformat(),
            "requests": len(points),
            "requests_per_s": round(len(points) / span, 4),
            "error_rate": round(errors / len(points), 4) if points else None,
            "latency_p50_ms": _round(percentile(latencies, 50)),
            "latency_p95_ms": _round(percentile(latencies, 95)),
            "ttft_p50_ms": _round(percentile(ttfts, 50)),
            "ttft_p95_ms": _round(percentile(ttfts, 95)),
            "output_tokens_per_s": round(sum(p.completion_tokens for p in points) / span, 4),
            "replicas": round(replica_s / span, 3),  # the average number running in the step
        })  # fmt: skip
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
