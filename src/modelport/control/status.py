"""An endpoint's replica target and its status, derived from the facts (pure).

The reconcile loop writes the status each tick; the endpoint service writes it right after an
API change. Both read these rules, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelport.runtime.base import ReplicaPhase
from modelport.runtime.failure import failure_line
from modelport.spec.endpoint import EndpointState, Intent
from modelport.store.records import EndpointRecord, ReplicaRecord

STOPPING = "stopping"  # a replica phase only the control plane sets: drained, then stopped


def target_replicas(endpoint: EndpointRecord) -> int:
    """Replicas the endpoint should have now: the autoscaler's count within min..max (at least
    one while active; zero is the scaledToZero intent)."""
    if endpoint.intent != Intent.ACTIVE or endpoint.state == EndpointState.FAILED:
        return 0
    floor = max(endpoint.min_replica, 1)
    wanted = endpoint.desired_replicas if endpoint.desired_replicas is not None else floor
    return min(max(wanted, floor), max(endpoint.max_replica, floor))


def standby_replicas(endpoint: EndpointRecord) -> int:
    """Loaded replicas kept out of rotation, while active or scaled to zero (a paused, failed or
    deleting endpoint keeps none)."""
    if (
        endpoint.intent not in (Intent.ACTIVE, Intent.SCALED_TO_ZERO)
        or endpoint.state == EndpointState.FAILED
    ):
        return 0
    return endpoint.warm_standby


def serving_count(ready: int, target: int, standby: int) -> int:
    """Of `ready` replicas, how many take traffic: all but up to `standby` beyond the target."""
    return ready - min(max(ready - target, 0), standby)


@dataclass(frozen=True)
class Status:
    state: EndpointState
    message: str
    ready: int
    target: int


def derive_status(endpoint: EndpointRecord, replicas: Sequence[ReplicaRecord]) -> Status:
    """status.{state, message, readyReplica, targetReplica} from the facts, nothing remembered."""
    live = [r for r in replicas if r.phase != STOPPING]
    target = target_replicas(endpoint)
    all_ready = sum(1 for r in live if r.phase == ReplicaPhase.READY)
    ready = serving_count(all_ready, target, standby_replicas(endpoint))
    if endpoint.intent == Intent.PAUSED:
        return Status(EndpointState.PAUSED, "paused by the user; resume to serve again", ready, 0)
    if endpoint.intent == Intent.SCALED_TO_ZERO:
        return Status(EndpointState.SCALED_TO_ZERO, "scaled to zero; a request wakes it up", ready, 0)
    if endpoint.intent == Intent.DELETING:
        return Status(EndpointState(endpoint.state), "deleting", ready, 0)
    if endpoint.state == EndpointState.FAILED:
        return Status(EndpointState.FAILED, endpoint.message, ready, 0)
    current = [r for r in live if r.generation == endpoint.generation]
    ready_current = sum(1 for r in current if r.phase == ReplicaPhase.READY)
    notes = [_replica_note(r) for r in current if r.restarts or r.phase != ReplicaPhase.READY]
    message = "; ".join(note for note in notes if note)
    if endpoint.good_generation not in (0, endpoint.generation):
        progress = (
            f"rolling out generation {endpoint.generation}: {ready_current}/{target} new replicas ready"
        )
        return Status(EndpointState.UPDATING, _join(progress, message), ready, target)
    if endpoint.update_error:
        return Status(EndpointState.UPDATE_FAILED, endpoint.update_error, ready, target)
    if ready_current:
        return Status(EndpointState.RUNNING, message, ready, target)
    if current:
        return Status(EndpointState.INITIALIZING, _join("starting replicas", message), ready, target)
    return Status(EndpointState.PENDING, "waiting for a replica to be placed", ready, target)


def status_changes(endpoint: EndpointRecord, replicas: Sequence[ReplicaRecord]) -> dict[str, Any]:
    """The store update that brings the endpoint's status in line with the facts ({} if none)."""
    status = derive_status(endpoint, replicas)
    fresh = {
        "state": status.state.value,
        "message": status.message,
        "ready_replicas": status.ready,
        "target_replicas": status.target,
    }
    return {k: v for k, v in fresh.items() if getattr(endpoint, k) != v}


def _replica_note(replica: ReplicaRecord) -> str:
    last = failure_line(replica.last_error)  # the exception's line, never its traceback
    if replica.phase == ReplicaPhase.STARTING and replica.ready_at is not None:  # was ready this run
        return f"replica {replica.id[:8]} is failing its health probes; not routed"
    if replica.phase == ReplicaPhase.STARTING and not replica.restarts:
        return ""
    if replica.phase == ReplicaPhase.EXITED:
        return f"replica {replica.id[:8]} exited ({last}); restarting (restart {replica.restarts + 1})"
    return f"replica {replica.id[:8]} restarted {replica.restarts}x; last exit: {last}"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
