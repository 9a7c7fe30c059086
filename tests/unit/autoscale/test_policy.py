"""The autoscaling policy as a pure function: a clock is a number passed in, never patched."""

from __future__ import annotations

import dataclasses

from modelport.autoscale.policy import (
    Context,
    Decision,
    ScalerState,
    ScalingPolicy,
    Signals,
    decide,
    initial_state,
)

POLICY = ScalingPolicy(
    min_replicas=0, max_replicas=4, target_pending=2, stabilization_s=300, scale_to_zero_after_s=600
)


class Scaler:
    """Feeds signals through `decide` the way the production loop does, keeping the state."""

    def __init__(self, policy: ScalingPolicy = POLICY, current: int = 1, now: float = 0.0) -> None:
        self.policy = policy
        self.current = current
        self.state: ScalerState = initial_state(now, current)
        self.arrivals = 0

    def at(self, now: float, pending: int = 0, new_requests: int = 0, ready: int | None = None,
           kv: float | None = None, waiting: int | None = None) -> Decision:  # fmt: skip
        self.arrivals += new_requests
        signals = Signals(pending, self.arrivals, self.current if ready is None else ready, kv, waiting)
        decision, self.state = decide(Context(now, self.current, self.policy, signals, self.state))
        self.current = decision.desired
        return decision


def test_the_first_request_at_zero_wakes_as_many_replicas_as_the_load_asks() -> None:
    scaler = Scaler(current=0)
    assert scaler.at(1.0).desired == 0
    woken = scaler.at(2.0, pending=5, new_requests=5, ready=0)
    assert woken.desired == 3 and woken.changed and "woken" in woken.reason
    assert woken.inputs["pending"] == 5


def test_scale_up_on_the_tick_the_threshold_is_crossed_and_never_past_max() -> None:
    scaler = Scaler(current=1)
    assert scaler.at(1.0, pending=2).desired == 1  # 2 pending / target 2 = 1 replica
    up = scaler.at(1.5, pending=7)
    assert up.desired == 4 and up.reason.startswith("scale up")
    assert scaler.at(2.0, pending=50).desired == 4  # max


def test_a_load_inside_the_tolerance_band_does_not_add_a_replica() -> None:
    scaler = Scaler(ScalingPolicy(min_replicas=1, max_replicas=5, target_pending=10), current=1)
    assert scaler.at(1.0, pending=11).desired == 1  # 10 % over target: tolerated
    assert scaler.at(2.0, pending=12).desired == 2


def test_scale_down_waits_for_the_stabilization_window() -> None:
    scaler = Scaler(dataclasses.replace(POLICY, smoothing_s=0), current=1)
    assert scaler.at(0.0, pending=8).desired == 4
    for t in range(1, 300, 10):  # a lull shorter than the window keeps the replicas
        assert scaler.at(float(t), pending=0).desired == 4, t
    down = scaler.at(300.5, pending=1)
    assert down.desired == 1 and down.reason.startswith("scale down")


def test_with_smoothing_the_count_steps_down_as_the_average_fell() -> None:
    scaler = Scaler(current=1)  # 20 s average
    assert scaler.at(0.0, pending=8).desired == 4
    seen = [scaler.at(float(t)).desired for t in range(1, 400)]
    assert seen[:299] == [4] * 299  # the average asked for 4 at t=1: held for 300 s
    assert seen[-1] == 1 and sorted(set(seen)) == [1, 2, 3, 4] and seen == sorted(seen, reverse=True)


def test_a_recent_peak_holds_the_count_even_after_older_ones_expire() -> None:
    scaler = Scaler(current=1)
    scaler.at(0.0, pending=8)  # 4
    scaler.at(100.0, pending=5)  # 3 (the average has had 100 s to follow), in the window
    assert scaler.at(301.0).desired == 3  # the peak at t=0 left the window; t=100 still holds 3
    assert scaler.at(401.0).desired == 1


def test_scale_to_zero_only_after_the_idle_timeout_and_new_requests_reset_it() -> None:
    scaler = Scaler(
        ScalingPolicy(min_replicas=0, max_replicas=2, stabilization_s=0, scale_to_zero_after_s=60)
    )
    scaler.at(0.0, pending=1, new_requests=1)
    assert scaler.at(59.0).desired == 1
    scaler.at(59.5, new_requests=1)  # a short request that came and went between two ticks
    assert scaler.at(119.0).desired == 1
    zero = scaler.at(119.6)
    assert zero.desired == 0 and "no request for 60 s" in zero.reason
    assert scaler.at(200.0).desired == 0


def test_an_endpoint_with_a_minimum_never_goes_to_zero_and_is_brought_into_bounds() -> None:
    scaler = Scaler(ScalingPolicy(min_replicas=2, max_replicas=3, scale_to_zero_after_s=1), current=1)
    bounded = scaler.at(0.0)
    assert bounded.desired == 2
    assert scaler.at(10_000.0).desired == 2
    shrunk = Scaler(ScalingPolicy(min_replicas=1, max_replicas=2), current=5).at(0.0)
    assert shrunk.desired == 2


def test_a_restarted_scaler_keeps_its_replicas_for_a_window_though_the_counts_restart_at_zero() -> None:
    scaler = Scaler(ScalingPolicy(min_replicas=1, max_replicas=4, stabilization_s=300), current=3)
    assert scaler.at(1.0).desired == 3
    assert scaler.at(301.0).desired == 1


def test_a_restarted_scaler_does_not_scale_to_zero_at_once() -> None:
    policy = ScalingPolicy(min_replicas=0, max_replicas=1, stabilization_s=0, scale_to_zero_after_s=60)
    scaler = Scaler(policy, current=1, now=5000.0)
    assert scaler.at(5001.0).desired == 1
    assert scaler.at(5061.0).desired == 0


def test_hardware_usage_scales_on_the_engines_kv_cache_use() -> None:
    policy = ScalingPolicy(min_replicas=1, max_replicas=8, target_usage=60, stabilization_s=0)
    scaler = Scaler(policy, current=2)
    up = scaler.at(0.0, pending=3, kv=0.9)
    assert up.desired == 3 and "KV cache 90%" in up.reason  # ceil(2 * 90 / 60)
    assert scaler.at(1.0, pending=3, kv=0.62).desired == 3  # within tolerance
    assert scaler.at(2.0, pending=1, kv=0.1).desired == 1
    queued = scaler.at(3.0, pending=9, kv=0.2, waiting=4)
    assert queued.desired == 2  # requests wait inside the engine: one more replica


def test_every_decision_carries_its_inputs_and_a_reason() -> None:
    decision = Scaler(current=1).at(1.0, pending=3, kv=0.5, waiting=0)
    assert decision.inputs == {
        "pending": 3, "pending_average": 3.0, "ready": 1, "recommended": 2, "idle_s": 0.0, "kv_usage": 0.5,
        "engine_waiting": 0,
    }  # fmt: skip
    assert decision.reason


def test_a_noise_spike_buys_no_replica_but_a_sustained_load_and_a_burst_do() -> None:
    policy = ScalingPolicy(
        min_replicas=1, max_replicas=8, target_pending=4, smoothing_s=20, stabilization_s=0
    )
    scaler = Scaler(policy, current=2)
    scaler.at(0.0, pending=6)
    assert scaler.at(0.5, pending=12).desired == 2  # one tick at 1.5x the target: the average barely moves
    assert scaler.at(1.0, pending=6).desired == 2
    t = 1.0
    while scaler.current == 2 and t < 60:  # the same 1.5x held: the average crosses within seconds
        t += 0.5
        scaler.at(t, pending=12)
    assert scaler.current == 3 and t < 30, t
    burst = scaler.at(t + 0.5, pending=40)  # >= 2x what 3 replicas are sized for: followed at once
    assert burst.desired == 8 and burst.reason.startswith("scale up: burst")


def test_idle_time_counts_from_when_a_replica_is_ready_not_from_its_launch() -> None:
    policy = ScalingPolicy(min_replicas=0, max_replicas=1, stabilization_s=0, scale_to_zero_after_s=10)
    scaler = Scaler(policy, current=1)
    assert scaler.at(30.0, ready=0).desired == 1  # still loading after 30 s: not idle
    assert scaler.at(31.0, ready=1).desired == 1
    assert scaler.at(41.0, ready=1).desired == 0
