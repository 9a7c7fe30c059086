"""The simulator: costs and waits follow from the replica model; the policies differ as designed."""

from __future__ import annotations

from modelport.autoscale.policy import ScalingPolicy
from modelport.autoscale.simulate import (
    AlwaysOn,
    ManagedDefaultScaler,
    ModelportScaler,
    ReplicaModel,
    Trace,
    poisson_trace,
    simulate,
)

MODEL = ReplicaModel(start_s=10.0, slots=2, service_s=1.0)


def test_always_on_pays_for_every_replica_all_the_time_and_never_queues_under_capacity() -> None:
    trace = Trace("even", 600.0, tuple(float(t) for t in range(600)))  # 1 request/s, 1 s each
    result = simulate(trace, AlwaysOn(3), MODEL, initial=3)
    assert result.served == 600 and result.failed == 0 and result.held == 0
    assert result.replica_seconds == 3 * 600.0
    assert result.wait_percentile(0.99) == 0.0


def test_requests_at_zero_are_held_for_the_start_time_then_served() -> None:
    trace = Trace("one", 120.0, (5.0, 5.1, 5.2))
    policy = ScalingPolicy(min_replicas=0, max_replicas=2, target_pending=2, scale_to_zero_after_s=30)
    result = simulate(trace, ModelportScaler(policy), MODEL, initial=0)
    assert result.held == 3 and result.failed == 0 and result.served == 3
    assert 10.0 <= result.wait_percentile(0.0) < 11.0  # the replica's start, plus under one tick
    assert result.timeline[-1][1] == 0  # back at zero after the idle timeout


def test_a_request_that_waits_past_the_hold_limit_fails() -> None:
    slow = ReplicaModel(start_s=200.0, slots=1, service_s=1.0)
    policy = ScalingPolicy(min_replicas=0, max_replicas=1)
    result = simulate(Trace("late", 60.0, (1.0,)), ModelportScaler(policy), slow, initial=0, hold_s=120.0)
    assert result.failed == 1 and result.served == 0


def test_modelport_reacts_to_a_burst_faster_than_the_managed_default() -> None:
    def rate(t: float) -> float:
        return 6.0 if 300 <= t < 420 else 0.2

    trace = poisson_trace("burst", 900.0, rate, 6.0, seed=7)
    policy = ScalingPolicy(min_replicas=1, max_replicas=6, target_pending=1.6)
    ours = simulate(trace, ModelportScaler(policy), MODEL)
    managed = simulate(trace, ManagedDefaultScaler(1, 6), MODEL)
    assert ours.failed == 0
    assert ours.wait_percentile(0.95) < managed.wait_percentile(0.95) / 2
    assert max(launched for _, launched, _ in ours.timeline) == 6
