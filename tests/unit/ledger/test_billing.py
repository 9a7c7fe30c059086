"""Per-second billing: replica runs clipped to a window, to the microsecond, and their cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelport.ledger.billing import ReplicaRun, cost, cost_per_million_tokens, replica_seconds, run_seconds

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def run(start_s: float, end_s: float | None, endpoint: str = "chat", size: str = "x1") -> ReplicaRun:
    ended = None if end_s is None else T0 + timedelta(seconds=end_s)
    return ReplicaRun("r", "default", endpoint, "nvidia-l4", size, 1, T0 + timedelta(seconds=start_s), ended)


def test_a_run_is_billed_to_the_microsecond_and_clipped_to_the_window() -> None:
    assert run_seconds(run(0, 90.25), None, None, T0) == 90.25
    assert run_seconds(run(0, 90.25), T0 + timedelta(seconds=30), T0 + timedelta(seconds=60), T0) == 30
    assert run_seconds(run(0, 10), T0 + timedelta(seconds=20), None, T0) == 0  # ended before the window
    assert run_seconds(run(100, None), None, None, T0 + timedelta(seconds=100.5)) == 0.5  # still running


def test_seconds_add_up_per_endpoint_and_hardware() -> None:
    runs = [run(0, 60), run(100, 130), run(0, 10, endpoint="embed"), run(0, 5, size="x2")]
    seconds = replica_seconds(runs, None, None, T0 + timedelta(hours=1))
    assert seconds == {
        ("default", "chat"): {"nvidia-l4/x1": 90.0, "nvidia-l4/x2": 5.0},
        ("default", "embed"): {"nvidia-l4/x1": 10.0},
    }


def test_cost_is_per_second_at_an_hourly_price() -> None:
    assert cost(90, 0.8) == 0.02  # 90 s of a $0.80/h instance
    assert cost_per_million_tokens(0.02, 4000) == 5.0
    assert cost_per_million_tokens(0.02, 0) is None
