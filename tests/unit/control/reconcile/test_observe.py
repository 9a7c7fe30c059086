"""What the observer makes of each runtime observation, over a real store, a scripted runtime
and a clock that moves only when told: ready, exited, not healthy in time, and a ready replica
failing its probes (out of routing at once, killed and marked exited after enough of them)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from modelport.control.reconcile.actions import ReplicaStops
from modelport.control.reconcile.observe import ERROR_LINES, ReplicaObserver
from modelport.control.reconcile.settings import LoopSettings
from modelport.gateway.routing import RoutingTable
from modelport.placement.resources import fields_from_spec, revision_from_spec
from modelport.runtime.base import ReplicaPhase
from modelport.spec.endpoint import EndpointSpec
from modelport.store.records import EndpointRecord, ReplicaRecord
from modelport.store.repository import Store
from tests.support.fake_runtimes import ScriptedRuntime, handle_of
from tests.unit.control.conftest import Clock

SETTINGS = LoopSettings(interval_s=0.5, start_timeout_s=60.0, unhealthy_probes=3, unhealthy_stop_grace_s=1.0)


def endpoint_in(store: Store, clock: Clock) -> EndpointRecord:
    spec = EndpointSpec.model_validate({"name": "chat", "model": {"repository": "org/chat"}})
    return store.create_endpoint(fields_from_spec("default", spec), revision_from_spec(spec), clock())


def replica_of(endpoint: EndpointRecord, clock: Clock, phase: ReplicaPhase, **changes: Any) -> ReplicaRecord:
    replica = ReplicaRecord(
        id="r1", endpoint_id=endpoint.id, generation=1, runtime="scripted", handle=handle_of("r1").to_json(),
        phase=phase.value, restarts=0, last_error=None, started_at=clock(), ready_at=None, exited_at=None,
    )  # fmt: skip
    return dataclasses.replace(replica, **changes)


def observer_of(store: Store, clock: Clock, runtime: ScriptedRuntime) -> tuple[ReplicaObserver, ReplicaStops]:
    stops = ReplicaStops(store, runtime, RoutingTable(), clock, SETTINGS, lambda: None)
    return ReplicaObserver(store, runtime, clock, SETTINGS, stops), stops


def test_a_ready_replica_failing_probes_leaves_routing_then_is_killed(store: Store, clock: Clock) -> None:
    endpoint = endpoint_in(store, clock)
    runtime = ScriptedRuntime()
    ready = replica_of(endpoint, clock, ReplicaPhase.READY, ready_at=clock())
    store.put_replica(ready)

    async def scenario() -> list[ReplicaRecord]:
        observer, stops = observer_of(store, clock, runtime)
        runtime.phases["r1"] = ReplicaPhase.STARTING  # its health route stopped answering
        seen = []
        for _ in range(3):
            [replica] = await observer.observe(store.list_replicas(), {endpoint.id: endpoint})
            seen.append(replica)
            clock.advance(0.5)
        await stops.finish()
        return seen

    first, second, third = asyncio.run(scenario())
    assert (first.phase, second.phase) == ("starting", "starting")  # not routed, not killed yet
    assert third.phase == "exited"
    assert third.last_error == "unhealthy after ready: 3 failed probes in 1.0 s"
    assert runtime.stops == [("r1", SETTINGS.unhealthy_stop_grace_s)]  # killed once, no drain
    assert store.list_replicas() == [third]


def test_a_probe_that_passes_again_clears_the_failures(store: Store, clock: Clock) -> None:
    endpoint = endpoint_in(store, clock)
    runtime = ScriptedRuntime()
    store.put_replica(replica_of(endpoint, clock, ReplicaPhase.READY, ready_at=clock()))

    async def scenario() -> list[str]:
        observer, _ = observer_of(store, clock, runtime)
        phases = []
        for seen in [ReplicaPhase.STARTING] * 2 + [ReplicaPhase.READY] + [ReplicaPhase.STARTING] * 2:
            runtime.phases["r1"] = seen
            [replica] = await observer.observe(store.list_replicas(), {endpoint.id: endpoint})
            phases.append(replica.phase)
            clock.advance(0.5)
        return phases

    assert asyncio.run(scenario()) == ["starting", "starting", "ready", "starting", "starting"]
    assert runtime.stops == []


def test_a_replica_not_healthy_in_time_is_a_failed_start(store: Store, clock: Clock) -> None:
    endpoint = endpoint_in(store, clock)
    runtime = ScriptedRuntime()
    runtime.phases["r1"] = ReplicaPhase.STARTING
    store.put_replica(replica_of(endpoint, clock, ReplicaPhase.STARTING))

    async def scenario() -> tuple[ReplicaRecord, ReplicaRecord]:
        observer, stops = observer_of(store, clock, runtime)
        [waiting] = await observer.observe(store.list_replicas(), {endpoint.id: endpoint})
        clock.advance(SETTINGS.start_timeout_s + 1)
        [late] = await observer.observe(store.list_replicas(), {endpoint.id: endpoint})
        await stops.finish()
        return waiting, late

    waiting, late = asyncio.run(scenario())
    assert waiting.phase == "starting"
    assert (late.phase, late.last_error) == ("exited", "not healthy after 61 s; stopped")
    assert runtime.stops == [("r1", SETTINGS.stop_grace_s)]


def test_an_exit_keeps_the_code_and_the_last_log_lines(store: Store, clock: Clock) -> None:
    endpoint = endpoint_in(store, clock)
    runtime = ScriptedRuntime()
    runtime.phases["r1"] = ReplicaPhase.EXITED
    runtime.exit_code = 3
    runtime.last_lines = [f"line {n}" for n in range(ERROR_LINES + 5)]
    store.put_replica(replica_of(endpoint, clock, ReplicaPhase.STARTING))
    observer, _ = observer_of(store, clock, runtime)

    [exited] = asyncio.run(observer.observe(store.list_replicas(), {endpoint.id: endpoint}))
    assert (exited.phase, exited.exited_at) == ("exited", clock())
    assert exited.last_error is not None
    code, *lines = exited.last_error.splitlines()
    assert code == "exit code 3"
    assert lines == runtime.last_lines[-ERROR_LINES:]


def test_restarts_are_remembered_while_ready_and_forgotten_with_the_replica(
    store: Store, clock: Clock
) -> None:
    endpoint = endpoint_in(store, clock)
    runtime = ScriptedRuntime()
    runtime.phases["r1"] = ReplicaPhase.READY
    store.put_replica(replica_of(endpoint, clock, ReplicaPhase.STARTING, restarts=2))
    observer, _ = observer_of(store, clock, runtime)

    [ready] = asyncio.run(observer.observe(store.list_replicas(), {endpoint.id: endpoint}))
    assert (ready.phase, ready.ready_at) == ("ready", clock())
    assert dict(observer.ready_restarts) == {"r1": 2}
    store.delete_replica("r1")
    asyncio.run(observer.observe(store.list_replicas(), {endpoint.id: endpoint}))
    assert dict(observer.ready_restarts) == {}
