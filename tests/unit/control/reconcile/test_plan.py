"""The reconciler's plan and status, as pure functions of records and a fixed clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from modelport.control.reconcile.plan import (
    MAX_LOAD_ATTEMPTS,
    MarkFailed,
    Promote,
    RemoveEndpoint,
    RestartReplica,
    RollBack,
    StartReplica,
    StopReplica,
    backoff_s,
    failed_probe,
    is_unhealthy,
    plan_actions,
    unhealthy_reason,
)
from modelport.control.status import STOPPING, derive_status, serving_count, target_replicas
from modelport.spec.endpoint import EndpointState
from modelport.store.records import EndpointRecord, ReplicaRecord

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def endpoint(**changes: object) -> EndpointRecord:
    base = EndpointRecord(
        id=1, namespace="default", name="chat", type="protected", accelerator="cpu", instance_type="local",
        instance_size="x1", min_replica=1, max_replica=1, scale_to_zero_timeout=None, scaling_measure=None,
        scale_to_zero_after_s=None, stabilization_s=None, warm_standby=0,
        vendor="local", region="local", tags=[], traffic=None, intent="active", generation=1,
        good_generation=1,
        state="running", message="", ready_replicas=0, target_replicas=0, desired_replicas=None,
        update_error=None,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def replica(rid: str, **changes: object) -> ReplicaRecord:
    base = ReplicaRecord(
        id=rid, endpoint_id=1, generation=1, runtime="local", handle={"pid": 1}, phase="ready",
        restarts=0, last_error=None, started_at=NOW - timedelta(minutes=5),
        ready_at=NOW - timedelta(minutes=4), exited_at=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_new_endpoint_starts_min_replicas() -> None:
    ep = endpoint(min_replica=2, max_replica=3, good_generation=0, state="pending")
    assert plan_actions([ep], [], NOW) == [StartReplica(1, 1), StartReplica(1, 1)]


def test_min_zero_still_runs_one_replica_while_active() -> None:
    assert plan_actions([endpoint(min_replica=0)], [], NOW) == [StartReplica(1, 1)]


def test_steady_state_plans_nothing() -> None:
    assert plan_actions([endpoint()], [replica("a")], NOW) == []


def test_crashed_replica_restarts_after_backoff() -> None:
    crashed = replica("a", phase="exited", restarts=1, exited_at=NOW - timedelta(seconds=1))
    assert plan_actions([endpoint()], [crashed], NOW) == []  # backoff for restart 1 is 2 s
    later = NOW + timedelta(seconds=backoff_s(1))
    assert plan_actions([endpoint()], [crashed], later) == [RestartReplica("a")]


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n) for n in range(3)] == [1.0, 2.0, 4.0]
    assert backoff_s(50) == 30.0


def test_repeated_load_failure_fails_a_first_deploy() -> None:
    ep = endpoint(good_generation=0, state="initializing")
    failing = replica(
        "a", phase="exited", ready_at=None, restarts=MAX_LOAD_ATTEMPTS - 1, exited_at=NOW, last_error="boom"
    )
    [action] = plan_actions([ep], [failing], NOW)
    assert isinstance(action, MarkFailed) and "boom" in action.message


TRACEBACK = (
    "exit code 1\nTraceback (most recent call last):\n"
    '  File "/src/modelport/engine/loader.py", line 90, in load\n    state = safe_open(path)\n'
    "safetensors_rust.SafetensorError: Error while deserializing header: MetadataIncompleteBuffer"
)


def test_a_failed_endpoints_message_is_the_exceptions_line_not_its_traceback() -> None:
    ep = endpoint(good_generation=0, state="initializing")
    failing = replica(
        "a",
        phase="exited",
        ready_at=None,
        restarts=MAX_LOAD_ATTEMPTS - 1,
        exited_at=NOW,
        last_error=TRACEBACK,
    )
    [action] = plan_actions([ep], [failing], NOW)
    assert isinstance(action, MarkFailed)
    assert action.message == (
        f"replica failed to start {MAX_LOAD_ATTEMPTS} times: "
        "safetensors_rust.SafetensorError: Error while deserializing header: MetadataIncompleteBuffer"
    )
    restarting = derive_status(endpoint(), [replica("abcdef123456", phase="exited", last_error=TRACEBACK)])
    assert "\n" not in restarting.message and "Traceback" not in restarting.message
    assert "exited (safetensors_rust.SafetensorError: Error while deserializing" in restarting.message


def test_a_replica_that_once_served_keeps_being_restarted() -> None:
    crashed = replica("a", phase="exited", restarts=5, exited_at=NOW - timedelta(minutes=1))
    assert plan_actions([endpoint()], [crashed], NOW) == [RestartReplica("a")]


def test_a_ready_replica_is_unhealthy_after_n_failed_probes_spread_over_the_interval() -> None:
    failures = failed_probe(None, NOW)
    assert not is_unhealthy(failures, NOW, probes=3, interval_s=0.5)
    at = [NOW + timedelta(seconds=s) for s in (0.5, 1.0)]
    failures = failed_probe(failed_probe(failures, at[0]), at[1])
    assert (failures.count, failures.since) == (3, NOW)
    assert is_unhealthy(failures, at[1], probes=3, interval_s=0.5)
    assert unhealthy_reason(failures, at[1]) == "unhealthy after ready: 3 failed probes in 1.0 s"
    # the loop polls every 0.1 s while anything starts: three quick failures are not enough yet
    quick = failed_probe(failed_probe(failed_probe(None, NOW), NOW), NOW + timedelta(seconds=0.2))
    assert not is_unhealthy(quick, NOW + timedelta(seconds=0.2), probes=3, interval_s=0.5)
    assert is_unhealthy(failed_probe(quick, at[1]), at[1], probes=3, interval_s=0.5)
    # probes=1: the first failure is enough
    assert is_unhealthy(failed_probe(None, NOW), NOW, probes=1, interval_s=0.5)


def test_an_unhealthy_replica_is_restarted_after_its_backoff_and_fails_no_deploy() -> None:
    # what the loop records for a replica that was ready and then failed its probes
    unhealthy = replica(
        "a", phase="exited", restarts=MAX_LOAD_ATTEMPTS - 1, exited_at=NOW, last_error="unhealthy after ready"
    )
    first_deploy = endpoint(good_generation=0, state="running")
    assert plan_actions([first_deploy], [unhealthy], NOW) == []  # backoff first
    later = NOW + timedelta(seconds=backoff_s(unhealthy.restarts))
    assert plan_actions([first_deploy], [unhealthy], later) == [RestartReplica("a")]


def test_failed_starts_are_counted_from_the_last_ready_run() -> None:
    ep = endpoint(good_generation=0, state="initializing")
    # ready at restart 2, then turned unhealthy and was restarted; that start failed once
    failing = replica("a", phase="exited", ready_at=None, restarts=3, exited_at=NOW - timedelta(minutes=1))
    assert plan_actions([ep], [failing], NOW, {"a": 2}) == [RestartReplica("a")]
    # three failed starts since it last served do fail it
    again = dataclasses.replace(failing, restarts=5, last_error="boom")
    [action] = plan_actions([ep], [again], NOW, {"a": 2})
    assert isinstance(action, MarkFailed) and "boom" in action.message
    # never seen ready (or after a control plane restart): every start counts
    assert isinstance(plan_actions([ep], [failing], NOW)[0], MarkFailed)


def test_failed_endpoint_stops_everything_and_starts_nothing() -> None:
    ep = endpoint(state="failed", message="boom")
    assert plan_actions([ep], [replica("a", phase="starting", ready_at=None)], NOW) == [StopReplica("a")]
    assert plan_actions([ep], [], NOW) == []


def test_rollout_keeps_old_replicas_until_new_ones_are_ready() -> None:
    ep = endpoint(generation=2, good_generation=1, state="updating")
    old = replica("old")
    assert plan_actions([ep], [old], NOW) == [StartReplica(1, 2)]
    starting = replica("new", generation=2, phase="starting", ready_at=None)
    assert plan_actions([ep], [old, starting], NOW) == []
    ready = replica("new", generation=2)
    assert plan_actions([ep], [old, ready], NOW) == [Promote(1, 2), StopReplica("old")]


def test_failed_update_rolls_back_while_old_replicas_serve() -> None:
    ep = endpoint(generation=2, good_generation=1, state="updating")
    bad = replica(
        "new", generation=2, phase="exited", ready_at=None, restarts=MAX_LOAD_ATTEMPTS - 1, exited_at=NOW
    )
    [action] = plan_actions([ep], [replica("old"), bad], NOW)
    assert isinstance(action, RollBack) and action.to_generation == 1
    rolled_back = endpoint(generation=1, good_generation=1, update_error=action.message)
    assert plan_actions([rolled_back], [replica("old"), bad], NOW) == [StopReplica("new")]


def test_pause_and_scale_to_zero_stop_replicas() -> None:
    for intent in ("paused", "scaledToZero"):
        reps = [replica("a"), replica("b", phase=STOPPING)]
        assert plan_actions([endpoint(intent=intent)], reps, NOW) == [StopReplica("a")]


def test_deleting_endpoint_is_removed_once_its_replicas_are_gone() -> None:
    ep = endpoint(intent="deleting")
    assert plan_actions([ep], [replica("a", phase=STOPPING)], NOW) == []
    assert plan_actions([ep], [], NOW) == [RemoveEndpoint(1)]


def test_scale_down_stops_the_least_useful_replicas_first() -> None:
    reps = [
        replica("old-ready", started_at=NOW - timedelta(minutes=9)),
        replica("new-ready", started_at=NOW - timedelta(minutes=1)),
        replica("starting", phase="starting", ready_at=None),
    ]
    assert plan_actions([endpoint()], reps, NOW) == [StopReplica("starting"), StopReplica("new-ready")]


def test_status_from_facts() -> None:
    assert derive_status(endpoint(good_generation=0, state="pending"), []).state == EndpointState.PENDING
    starting = replica("a", phase="starting", ready_at=None)
    assert derive_status(endpoint(good_generation=0), [starting]).state == EndpointState.INITIALIZING
    status = derive_status(endpoint(), [replica("a")])
    assert (status.state, status.ready, status.target) == (EndpointState.RUNNING, 1, 1)
    assert derive_status(endpoint(intent="paused"), [replica("a")]).state == EndpointState.PAUSED
    assert derive_status(endpoint(intent="scaledToZero"), []).state == EndpointState.SCALED_TO_ZERO
    failed = derive_status(endpoint(state="failed", message="no weights"), [])
    assert (failed.state, failed.message) == (EndpointState.FAILED, "no weights")
    updating = derive_status(endpoint(generation=2, good_generation=1), [replica("a")])
    assert updating.state == EndpointState.UPDATING and "generation 2" in updating.message
    rolled = derive_status(endpoint(update_error="update rolled back: x"), [replica("a")])
    assert rolled.state == EndpointState.UPDATE_FAILED


def test_status_says_what_happened_to_a_restarted_replica() -> None:
    back = replica("abcdef123456", restarts=1, last_error="exit code -9")
    status = derive_status(endpoint(), [back])
    assert status.state == EndpointState.RUNNING
    assert "abcdef12" in status.message and "exit code -9" in status.message


def test_status_says_a_replica_is_failing_its_probes() -> None:
    failing = replica("abcdef123456", phase="starting")  # ready_at set: it was ready this run
    status = derive_status(endpoint(), [failing, replica("b")])
    assert status.state == EndpointState.RUNNING and status.ready == 1
    assert "replica abcdef12 is failing its health probes" in status.message
    assert derive_status(endpoint(), [replica("c", phase="starting", ready_at=None)]).message == (
        "starting replicas"
    )


def test_the_autoscalers_count_is_the_target_within_bounds() -> None:
    assert target_replicas(endpoint(min_replica=1, max_replica=4, desired_replicas=3)) == 3
    assert target_replicas(endpoint(min_replica=2, max_replica=4, desired_replicas=1)) == 2
    assert target_replicas(endpoint(min_replica=0, max_replica=2, desired_replicas=5)) == 2
    assert (
        target_replicas(endpoint(min_replica=0, max_replica=2, intent="scaledToZero", desired_replicas=2))
        == 0
    )


def test_warm_standby_runs_beside_the_serving_replicas_and_through_scale_to_zero() -> None:
    active = endpoint(warm_standby=1)
    assert plan_actions([active], [replica("a")], NOW) == [StartReplica(1, 1)]
    assert plan_actions([active], [replica("a"), replica("b")], NOW) == []
    asleep = endpoint(warm_standby=1, intent="scaledToZero")
    newer = replica("b", started_at=NOW - timedelta(minutes=1))
    assert plan_actions([asleep], [replica("a"), newer], NOW) == [StopReplica("b")]  # the newest goes
    assert plan_actions([asleep], [replica("a")], NOW) == []  # the standby stays loaded at zero
    paused = endpoint(warm_standby=1, intent="paused")
    assert plan_actions([paused], [replica("a")], NOW) == [StopReplica("a")]


def test_standby_replicas_are_not_counted_as_serving() -> None:
    assert [serving_count(ready, 1, 1) for ready in (0, 1, 2, 3)] == [0, 1, 1, 2]
    assert serving_count(1, 0, 1) == 0  # scaled to zero: the standby does not serve
    assert serving_count(2, 2, 1) == 2  # scaled up: the standby serves at once
    asleep = endpoint(warm_standby=1, intent="scaledToZero", state="scaledToZero")
    status = derive_status(asleep, [replica("a")])
    assert (status.state, status.ready, status.target) == ("scaledToZero", 0, 0)
    awake = derive_status(endpoint(warm_standby=1), [replica("a"), replica("b")])
    assert (awake.state, awake.ready, awake.target) == ("running", 1, 1)
