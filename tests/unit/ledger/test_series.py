"""Per-step analytics series from usage records and replica runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelport.ledger.billing import ReplicaRun
from modelport.ledger.series import RequestPoint, percentile, series

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(seconds: float, status: int = 200, latency: float = 100.0, ttft: float | None = 20.0) -> RequestPoint:
    return RequestPoint(T0 + timedelta(seconds=seconds), status, latency, ttft, 10)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def test_each_step_has_its_traffic_errors_latency_and_replicas() -> None:
    requests = [at(1, latency=100), at(2, latency=300, ttft=None), at(30, status=500, latency=50), at(61)]
    runs = [ReplicaRun("r", "default", "chat", "local", "x1", 1, T0 + timedelta(seconds=30), None)]
    points = series(requests, runs, T0, T0 + timedelta(minutes=3), 60, T0 + timedelta(seconds=150))
    assert [p["requests"] for p in points] == [3, 1, 0]
    first = points[0]
    assert first["t"] == T0.isoformat() and first["requests_per_s"] == 0.05
    assert first["error_rate"] == round(1 / 3, 4)
    assert (first["latency_p50_ms"], first["latency_p95_ms"]) == (100.0, 300.0)
    assert first["ttft_p50_ms"] == 20.0  # only requests that had a first byte
    assert first["output_tokens_per_s"] == 0.5
    assert [p["replicas"] for p in points] == [0.5, 1.0, 0.5]  # from 0:30, and until now (2:30)
    assert points[2]["error_rate"] is None and points[2]["latency_p50_ms"] is None
