"""The autoscaling policy: one pure function from what is observed to how many replicas to run.

`decide(context)` takes the endpoint's scaling settings, the signals of this instant and the
state the previous call returned, and gives back a `Decision` (desired replicas, the reason,
the inputs) and the next state. No clock is read and nothing is stored here: production
(control/reconcile/autoscaler.py) and the trace simulator (autoscale/simulate.py) run the same code with
their own clocks.

Rules, in order:
- at zero, the first pending request wakes replicas at once (as many as the load asks for);
- the load's recommendation is `ceil(pending / target)` for `measure.pendingRequests`, with
  `pending` smoothed over `smoothing_s` (an exponential moving average, so Poisson noise does
  not buy replicas), or, for `measure.hardwareUsage`, the replicas that bring the engines' mean
  KV-cache use to the target (the Kubernetes HPA formula, with its 10 % tolerance band);
- a recommendation above the current count scales up on this call; so does a burst: when the
  instantaneous load asks for `panic_factor` times the current count, it is followed at once
  (Knative's panic mode) rather than waiting for the average to catch up;
- scaling down takes the highest recommendation of the stabilization window, so a short lull
  does not shed replicas that the next burst needs (hysteresis);
- min..max bound everything, with at least one replica while awake; an endpoint whose minimum
  is 0 goes to zero only after `scale_to_zero_after_s` with no request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_TARGET_PENDING = 1.0  # outstanding requests per replica, as Inference Endpoints' default
DEFAULT_STABILIZATION_S = 300.0
DEFAULT_SCALE_TO_ZERO_S = 15 * 60.0
DEFAULT_SMOOTHING_S = 20.0
DEFAULT_PANIC_FACTOR = 2.0
TOLERANCE = 0.1


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int
    max_replicas: int
    target_pending: float = DEFAULT_TARGET_PENDING  # measure.pendingRequests, per replica
    target_usage: float | None = None  # measure.hardwareUsage: KV-cache use in percent
    stabilization_s: float = DEFAULT_STABILIZATION_S
    scale_to_zero_after_s: float | None = None  # only used when min_replicas == 0
    smoothing_s: float = DEFAULT_SMOOTHING_S  # time constant of the pending-requests average
    panic_factor: float = DEFAULT_PANIC_FACTOR


@dataclass(frozen=True)
class Signals:
    """One instant's observation of an endpoint."""

    pending: int  # at the gateway: in flight + waiting for a slot + held for a replica
    arrivals: int  # requests that ever arrived (a counter: a change means a new request)
    ready: int  # replicas serving now
    kv_usage: float | None = None  # mean KV-cache use of the ready replicas' engines, 0..1
    engine_waiting: int | None = None  # requests queued inside the engines


@dataclass(frozen=True)
class ScalerState:
    last_request_at: float
    arrivals_seen: int = 0
    pending_average: float = 0.0
    averaged_at: float | None = None
    # the stabilization window as a falling staircase of (time, recommendation): each entry is
    # higher than every later one, so the first is the window's maximum (a sliding-window max)
    window: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class Context:
    now: float
    current: int  # replicas asked for now (0 when scaled to zero)
    policy: ScalingPolicy
    signals: Signals
    state: ScalerState


@dataclass(frozen=True)
class Decision:
    at: float
    previous: int
    desired: int
    reason: str
    inputs: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.desired != self.previous


def initial_state(now: float, current: int) -> ScalerState:
    """A fresh scaler (e.g. after a control-plane restart, when the gateway's counts start from
    nothing) counts as having just seen a request and as having recommended the current count,
    so it neither scales to zero nor sheds replicas before a full window of evidence."""
    return ScalerState(last_request_at=now, window=((now, current),))


def decide(ctx: Context) -> tuple[Decision, ScalerState]:
    policy, signals, now, current = ctx.policy, ctx.signals, ctx.now, ctx.current
    # idle time counts only once a replica serves: one still starting has not had its chance
    starting = current > 0 and signals.ready == 0
    active = signals.pending > 0 or signals.arrivals != ctx.state.arrivals_seen or starting
    last_request_at = now if active else ctx.state.last_request_at
    floor = max(policy.min_replicas, 1)
    average = _average(ctx.state, signals.pending, now, policy.smoothing_s)
    recommended, why = _recommend(policy, signals, average, current)
    recommended = min(max(recommended, floor), policy.max_replicas)
    window = _slide(ctx.state.window, now, recommended, policy.stabilization_s)
    state = ScalerState(last_request_at, signals.arrivals, average, now, window)
    inputs = _inputs(signals, average, recommended, now - last_request_at)

    def made(desired: int, reason: str) -> tuple[Decision, ScalerState]:
        return Decision(now, current, desired, reason, inputs), state

    if current == 0:
        if signals.pending > 0:
            return made(recommended, f"woken by {signals.pending} pending request(s); {why}")
        return made(0, "scaled to zero; no request pending")
    if recommended > current:
        return made(recommended, f"scale up: {why}")
    idle_s = now - last_request_at
    zero_after = policy.scale_to_zero_after_s if policy.min_replicas == 0 else None
    if zero_after is not None and not active and idle_s >= zero_after:
        return made(0, f"no request for {idle_s:.0f} s (scale to zero after {zero_after:g} s)")
    stabilized = min(max(window[0][1], floor), policy.max_replicas)
    if stabilized < current:  # also brings a count above a lowered max back within bounds
        return made(
            stabilized,
            f"scale down: the highest recommendation of the last {policy.stabilization_s:g} s is "
            f"{stabilized}; {why}",
        )
    return made(current, f"steady: {why}")


def _average(state: ScalerState, pending: int, now: float, smoothing_s: float) -> float:
    if state.averaged_at is None or smoothing_s <= 0:
        return float(pending)
    weight = 1.0 - math.exp(-max(now - state.averaged_at, 0.0) / smoothing_s)
    return state.pending_average + weight * (pending - state.pending_average)


def _recommend(policy: ScalingPolicy, signals: Signals, average: float, current: int) -> tuple[int, str]:
    """The replicas the load asks for, and why."""
    if policy.target_usage is not None and signals.kv_usage is not None and signals.ready > 0:
        usage = signals.kv_usage * 100
        ratio = usage / policy.target_usage
        wanted = signals.ready if abs(ratio - 1) <= TOLERANCE else math.ceil(signals.ready * ratio)
        if signals.engine_waiting:  # requests queued in the engines: the KV cache is not the limit
            wanted = max(wanted, signals.ready + 1)
        return wanted, f"KV cache {usage:.0f}% on {signals.ready} replica(s), target {policy.target_usage:g}%"
    target = policy.target_pending
    if current == 0 or signals.pending >= policy.panic_factor * target * current:
        burst = math.ceil(signals.pending / target)
        return burst, f"burst: {signals.pending} pending, target {target:g} per replica"
    wanted = math.ceil(average / target - 1e-9)
    if wanted > current and average <= target * current * (1 + TOLERANCE):
        wanted = current  # inside the tolerance band
    return wanted, f"{average:.1f} pending on average ({signals.pending} now), target {target:g} per replica"


def _slide(
    window: tuple[tuple[float, int], ...], now: float, recommended: int, span_s: float
) -> tuple[tuple[float, int], ...]:
    kept = [(t, r) for t, r in window if now - t < span_s and r > recommended]
    return (*kept, (now, recommended))


def _inputs(signals: Signals, average: float, recommended: int, idle_s: float) -> dict[str, float]:
    inputs: dict[str, float] = {
        "pending": signals.pending,
        "pending_average": round(average, 3),
        "ready": signals.ready,
        "recommended": recommended,
        "idle_s": round(idle_s, 3),
    }
    if signals.kv_usage is not None:
        inputs["kv_usage"] = round(signals.kv_usage, 4)
    if signals.engine_waiting is not None:
        inputs["engine_waiting"] = signals.engine_waiting
    return inputs
