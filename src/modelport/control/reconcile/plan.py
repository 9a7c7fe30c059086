"""The reconciler's brain: desired endpoints + observed replicas -> actions, and the status.

Pure functions of store records and an injected `now`; the loop (control/reconcile/loop.py) has
them carried out through the runtime (actions.py). Rules, per endpoint:
- paused / scaled to zero / deleting: stop every replica; a deleting endpoint with none left
  is removed.
- failed: nothing runs until an update or resume clears it.
- the current generation is kept at its target: exited replicas restart in place after an
  exponential backoff; a replica that exits `MAX_LOAD_ATTEMPTS` times without becoming ready
  (counted since it was last ready) fails the endpoint (first deploy) or rolls the update back
  (a good generation exists).
- a replica that was ready and then fails `probes` health probes in a row (`is_unhealthy`) is
  taken out of routing at the first failure, then stopped and restarted like an exited one.
- rollout: replicas of other generations keep serving until the current generation has its
  target ready; then the new generation is promoted and the old replicas are drained and stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelport.control.status import STOPPING, standby_replicas, target_replicas
from modelport.runtime.base import ReplicaPhase
from modelport.runtime.failure import failure_line
from modelport.spec.endpoint import Intent
from modelport.store.records import EndpointRecord, ReplicaRecord

MAX_LOAD_ATTEMPTS = 3
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class StartReplica:
    endpoint_id: int
    generation: int


@dataclass(frozen=True)
class RestartReplica:
    replica_id: str


@dataclass(frozen=True)
class StopReplica:
    replica_id: str


@dataclass(frozen=True)
class MarkFailed:
    endpoint_id: int
    message: str


@dataclass(frozen=True)
class RollBack:
    endpoint_id: int
    to_generation: int
    message: str


@dataclass(frozen=True)
class Promote:
    endpoint_id: int
    generation: int


@dataclass(frozen=True)
class RemoveEndpoint:
    endpoint_id: int


Action = StartReplica | RestartReplica | StopReplica | MarkFailed | RollBack | Promote | RemoveEndpoint


def backoff_s(restarts: int) -> float:
    return float(min(BACKOFF_BASE_S * 2**restarts, BACKOFF_MAX_S))


@dataclass(frozen=True)
class ProbeFailures:
    """Health probes a replica that had been ready failed in a row (the loop keeps these in memory)."""

    count: int
    since: datetime  # when the first of them failed


def failed_probe(failures: ProbeFailures | None, now: datetime) -> ProbeFailures:
    """One more failed probe (a probe that passes ends the run: the loop forgets the record)."""
    if failures is None:
        return ProbeFailures(1, now)
    return ProbeFailures(failures.count + 1, failures.since)


def is_unhealthy(failures: ProbeFailures, now: datetime, probes: int, interval_s: float) -> bool:
    """Whether a replica that was ready is to be replaced: `probes` failed probes in a row, spread
    over at least `probes - 1` loop intervals (the loop polls faster while anything starts, which
    must not shorten the grace an unresponsive moment gets)."""
    spread = (now - failures.since).total_seconds()
    return failures.count >= probes and spread >= (probes - 1) * interval_s


def unhealthy_reason(failures: ProbeFailures, now: datetime) -> str:
    spread = (now - failures.since).total_seconds()
    return f"unhealthy after ready: {failures.count} failed probes in {spread:.1f} s"


def failed_starts(replica: ReplicaRecord, ready_restarts: Mapping[str, int]) -> int:
    """Starts of this replica that did not become ready, since it last was: `ready_restarts`
    holds its `restarts` count when it was last seen ready (a restart after a ready run, e.g.
    after it turned unhealthy, is no failed start)."""
    return replica.restarts - ready_restarts.get(replica.id, -1)


def plan_actions(
    endpoints: Sequence[EndpointRecord],
    replicas: Sequence[ReplicaRecord],
    now: datetime,
    ready_restarts: Mapping[str, int] | None = None,
) -> list[Action]:
    """`ready_restarts`: each replica's `restarts` when it was last seen ready (see failed_starts);
    a replica missing from it counts every start as a failure until it becomes ready."""
    by_endpoint: dict[int, list[ReplicaRecord]] = {}
    for replica in replicas:
        by_endpoint.setdefault(replica.endpoint_id, []).append(replica)
    actions: list[Action] = []
    for endpoint in endpoints:
        actions += _plan_endpoint(endpoint, by_endpoint.get(endpoint.id, []), now, ready_restarts or {})
    return actions


def _plan_endpoint(
    endpoint: EndpointRecord, replicas: list[ReplicaRecord], now: datetime, ready_restarts: Mapping[str, int]
) -> list[Action]:
    live = [r for r in replicas if r.phase != STOPPING]
    target = target_replicas(endpoint)
    total = target + standby_replicas(endpoint)  # serving plus warm standby
    if total == 0:
        if endpoint.intent == Intent.DELETING and not replicas:
            return [RemoveEndpoint(endpoint.id)]
        return [StopReplica(r.id) for r in live]

    current = [r for r in live if r.generation == endpoint.generation]
    others = [r for r in live if r.generation != endpoint.generation]
    actions: list[Action] = []

    for replica in current:
        if replica.phase != ReplicaPhase.EXITED:
            continue
        if replica.ready_at is None and failed_starts(replica, ready_restarts) >= MAX_LOAD_ATTEMPTS:
            return _give_up(endpoint, others, replica)
        assert replica.exited_at is not None
        if now >= replica.exited_at + timedelta(seconds=backoff_s(replica.restarts)):
            actions.append(RestartReplica(replica.id))

    if len(current) < total:
        actions += [StartReplica(endpoint.id, endpoint.generation)] * (total - len(current))
    elif len(current) > total:
        # drop the least useful first: exited, then starting, then the newest ready
        order = {ReplicaPhase.EXITED: 0, ReplicaPhase.STARTING: 1, ReplicaPhase.READY: 2}
        surplus = sorted(
            current, key=lambda r: (order.get(ReplicaPhase(r.phase), 0), -r.started_at.timestamp())
        )
        actions += [StopReplica(r.id) for r in surplus[: len(current) - total]]

    ready = sum(1 for r in current if r.phase == ReplicaPhase.READY)
    if ready >= target:
        if endpoint.good_generation != endpoint.generation:
            actions.append(Promote(endpoint.id, endpoint.generation))
        actions += [StopReplica(r.id) for r in others]
    else:
        # old replicas serve until the new ones are ready; a dead one is not brought back
        actions += [StopReplica(r.id) for r in others if r.phase == ReplicaPhase.EXITED]
    return actions


def _give_up(endpoint: EndpointRecord, others: list[ReplicaRecord], replica: ReplicaRecord) -> list[Action]:
    # the endpoint's status message: one line, the exception's (the log keeps the traceback)
    why = failure_line(replica.last_error) or "no output"
    reason = f"replica failed to start {MAX_LOAD_ATTEMPTS} times: {why}"
    rollback_possible = endpoint.good_generation not in (0, endpoint.generation) and any(
        r.phase == ReplicaPhase.READY for r in others
    )
    if rollback_possible:
        return [RollBack(endpoint.id, endpoint.good_generation, f"update rolled back: {reason}")]
    return [MarkFailed(endpoint.id, reason)]
