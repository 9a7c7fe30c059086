"""A trace-driven simulator of autoscaling policies, on a fake clock.

The modelport policy runs through the very `decide` function production uses; beside it, an
emulation of the managed default that the seeds describe (a check every 60 s against 80 %
utilisation, 300 s scale-down stabilization, scale to zero after an hour without requests)
and always-on at the maximum. Replicas are modelled by their start time (launch → ready) and
their capacity (concurrent slots, each busy `service_s` per request: continuous batching seen
from outside). Requests wait first-in first-out at the gateway; one that waits longer than the
hold limit fails (503), as it would in production.

Reported per run: replica-seconds (what the hardware costs, starting and draining replicas
included), queue wait percentiles, requests held (arrived with no replica ready) and failed.
"""

from __future__ import annotations

import collections
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from modelport.autoscale.policy import (
    Context,
    ScalerState,
    ScalingPolicy,
    Signals,
    decide,
    initial_state,
)


@dataclass(frozen=True)
class ReplicaModel:
    start_s: float = 20.0  # launch → ready (process, imports, weights, warm-up)
    slots: int = 8  # requests one replica serves at once
    service_s: float = 4.0  # how long a request holds its slot


@dataclass(frozen=True)
class Trace:
    name: str
    duration_s: float
    arrivals: tuple[float, ...]  # sorted arrival times in seconds


@dataclass(frozen=True)
class Observed:
    """What a scaler sees at a tick."""

    now: float
    current: int  # replicas launched and not stopping (ready or starting)
    ready: int
    queued: int
    busy: int  # requests being served
    arrivals: int  # requests so far
    slots: int  # per replica


class Scaler(Protocol):
    name: str
    interval_s: float

    def desired(self, seen: Observed) -> int: ...


class ModelportScaler:
    """modelport's production policy (autoscale/policy.py), ticking as the control plane does."""

    def __init__(self, policy: ScalingPolicy, interval_s: float = 0.5, name: str = "modelport") -> None:
        self.name = name
        self.policy = policy
        self.interval_s = interval_s
        self.state: ScalerState | None = None

    def desired(self, seen: Observed) -> int:
        state = self.state or initial_state(seen.now, seen.current)
        kv = seen.busy / (seen.ready * seen.slots) if seen.ready else None
        signals = Signals(seen.queued + seen.busy, seen.arrivals, seen.ready, kv)
        decision, self.state = decide(Context(seen.now, seen.current, self.policy, signals, state))
        return decision.desired


class ManagedDefaultScaler:
    """The managed default as the seeds describe it: every 60 s, scale on utilisation against
    80 % (HPA's formula, 10 % tolerance), scale down to the highest recommendation of the last
    300 s, to zero after an hour with no request; a request at zero is noticed at the next check."""

    name = "managed default"

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        interval_s: float = 60.0,
        threshold: float = 0.8,
        stabilization_s: float = 300.0,
        idle_s: float = 3600.0,
    ) -> None:
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.interval_s, self.threshold = interval_s, threshold
        self.stabilization_s, self.idle_s = stabilization_s, idle_s
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._arrivals = 0
        self._last_request = 0.0

    def desired(self, seen: Observed) -> int:
        if seen.arrivals != self._arrivals or seen.queued or seen.busy:
            self._last_request = seen.now
        self._arrivals = seen.arrivals
        floor = max(self.min_replicas, 1)
        if seen.current == 0:
            return floor if seen.queued else 0
        utilisation = seen.busy / (seen.ready * seen.slots) if seen.ready else 1.0
        ratio = utilisation / self.threshold
        wanted = seen.current if abs(ratio - 1) <= 0.1 else math.ceil(seen.current * ratio)
        wanted = min(max(wanted, floor), self.max_replicas)
        self._window.append((seen.now, wanted))
        while self._window and seen.now - self._window[0][0] >= self.stabilization_s:
            self._window.popleft()
        if wanted > seen.current:
            return wanted
        if self.min_replicas == 0 and seen.now - self._last_request >= self.idle_s:
            return 0
        return min(seen.current, max(r for _, r in self._window))


class AlwaysOn:
    name = "always-on"
    interval_s = 60.0

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def desired(self, seen: Observed) -> int:
        return self.replicas


@dataclass
class _Replica:
    launched: float
    ready_at: float
    free: list[float]  # a heap: when each slot is next free
    stopping_at: float | None = None

    def busy(self, now: float) -> int:
        return sum(1 for f in self.free if f > now)


@dataclass
class SimResult:
    trace: str
    policy: str
    duration_s: float
    replica_seconds: float
    served: int
    held: int  # arrived while no replica was ready
    failed: int  # waited past the hold limit
    waits: list[float] = field(repr=False)
    timeline: list[tuple[float, int, int]] = field(repr=False)  # (t, launched, ready) per minute

    def wait_percentile(self, q: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int | str]:
        return {
            "trace": self.trace,
            "policy": self.policy,
            "replica_seconds": round(self.replica_seconds),
            "replica_hours": round(self.replica_seconds / 3600, 2),
            "served": self.served,
            "held": self.held,
            "failed": self.failed,
            "p50_wait_s": round(self.wait_percentile(0.50), 3),
            "p95_wait_s": round(self.wait_percentile(0.95), 3),
            "p99_wait_s": round(self.wait_percentile(0.99), 3),
        }


def simulate(
    trace: Trace,
    scaler: Scaler,
    model: ReplicaModel,
    initial: int = 1,
    hold_s: float = 120.0,
    step_s: float = 0.5,
) -> SimResult:
    replicas = [_Replica(-model.start_s, 0.0, [0.0] * model.slots) for _ in range(initial)]
    queue: collections.deque[float] = collections.deque()
    waits: list[float] = []
    timeline: list[tuple[float, int, int]] = []
    held = failed = arrived = 0
    next_arrival = 0
    next_tick = 0.0
    t = 0.0
    arrivals = trace.arrivals
    while t < trace.duration_s or queue:
        end = t + step_s
        while next_arrival < len(arrivals) and arrivals[next_arrival] < end:
            at = arrivals[next_arrival]
            if not any(r.ready_at <= at and r.stopping_at is None for r in replicas):
                held += 1
            queue.append(at)
            next_arrival += 1
            arrived += 1
        failed += _serve(queue, replicas, end, model, hold_s, waits)
        if end >= next_tick:  # the scaler sees what arrived up to now, never later arrivals
            _scale(scaler, replicas, end, model, queue, arrived)
            next_tick = end + scaler.interval_s
        if int(end / 60) != int(t / 60):
            live = [r for r in replicas if r.stopping_at is None]
            timeline.append((end, len(live), sum(1 for r in live if r.ready_at <= end)))
        t = end
    cost = sum(_stopped_at(r, t) - max(r.launched, 0.0) for r in replicas)
    return SimResult(
        trace.name, scaler.name, trace.duration_s, cost, len(waits), held, failed, waits, timeline
    )


def _serve(queue: collections.deque[float], replicas: list[_Replica], end: float, model: ReplicaModel,
           hold_s: float, waits: list[float]) -> int:  # fmt: skip
    """Start queued requests on the earliest free slots before `end`; returns how many gave up."""
    failed = 0
    serving = [r for r in replicas if r.stopping_at is None]
    while queue:
        arrival = queue[0]
        best: _Replica | None = None
        best_start = math.inf
        for replica in serving:
            start = max(replica.free[0], replica.ready_at, arrival)
            if start < best_start:
                best, best_start = replica, start
        if best is not None and best_start > arrival + hold_s:
            queue.popleft()  # the client was answered 503 after the hold limit
            failed += 1
            continue
        if best is None or best_start > end:
            break
        queue.popleft()
        heapq.heapreplace(best.free, best_start + model.service_s)
        waits.append(best_start - arrival)
    while queue and queue[0] + hold_s < end:  # no replica at all: the hold ran out
        queue.popleft()
        failed += 1
    return failed


def _scale(scaler: Scaler, replicas: list[_Replica], now: float, model: ReplicaModel,
           queue: collections.deque[float], arrived: int) -> None:  # fmt: skip
    live = [r for r in replicas if r.stopping_at is None]
    ready = [r for r in live if r.ready_at <= now]
    seen = Observed(
        now, len(live), len(ready), len(queue), sum(r.busy(now) for r in ready), arrived, model.slots
    )
    desired = scaler.desired(seen)
    if desired > len(live):
        for _ in range(desired - len(live)):
            replicas.append(_Replica(now, now + model.start_s, [now + model.start_s] * model.slots))
    elif desired < len(live):
        # drop starting replicas first (newest first), then the least busy ready ones; a ready
        # replica drains: it takes nothing new and is paid for until its last request ends
        order = sorted(live, key=lambda r: (r.ready_at <= now, r.busy(now), -r.launched))
        for replica in order[: len(live) - desired]:
            replica.stopping_at = now if replica.ready_at > now else max(now, max(replica.free))


def _stopped_at(replica: _Replica, end: float) -> float:
    return replica.stopping_at if replica.stopping_at is not None else end


# -- traces ------------------------------------------------------------------------------------
def poisson_trace(
    name: str, duration_s: float, rate: Callable[[float], float], peak: float, seed: int
) -> Trace:
    """Arrivals of a Poisson process with a time-varying rate (thinning against `peak`)."""
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return Trace(name, duration_s, tuple(out))
        if rng.random() * peak < rate(t):
            out.append(t)


# requests/s by hour of the day, relative to the peak: an EU business day, ~10 % at night
BUSINESS_DAY = (
    0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.45, 0.8, 1.0, 1.0, 0.95,
    0.8, 0.9, 1.0, 1.0, 0.9, 0.7, 0.45, 0.3, 0.2, 0.15, 0.1, 0.1,
)  # fmt: skip


def business_day_trace(peak_rps: float = 5.0, seed: int = 1) -> Trace:
    def rate(t: float) -> float:
        hour = t / 3600
        i = int(hour) % 24
        frac = hour - int(hour)  # linear between the hourly levels, so ramps are smooth
        return peak_rps * (BUSINESS_DAY[i] * (1 - frac) + BUSINESS_DAY[(i + 1) % 24] * frac)

    return poisson_trace("business day", 24 * 3600, rate, peak_rps, seed)


def bursty_trace(base_rps: float = 0.3, burst_rps: float = 8.0, seed: int = 2) -> Trace:
    """Two hours: a low base with a 2-minute burst every 15 minutes."""

    def rate(t: float) -> float:
        return burst_rps if t % 900 < 120 else base_rps

    return poisson_trace("bursty", 2 * 3600, rate, burst_rps, seed)


def steady_trace(rps: float = 4.0, seed: int = 3) -> Trace:
    return poisson_trace("steady", 2 * 3600, lambda _t: rps, rps, seed)
