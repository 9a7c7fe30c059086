"""The routing table built from records alone (no store: the publisher runs on the event loop):
the oldest ready replicas of the current generation serve, warm standbys beyond the target wait
out of rotation, and the last generation keeps serving until a replica of the new one is ready."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from modelport.control.reconcile.publish import RoutePublisher
from modelport.control.reconcile.revisions import RevisionCache
from modelport.control.reconcile.sleep_wake import Sleeper
from modelport.gateway.routing import RoutingTable
from modelport.placement.resources import fields_from_spec, revision_from_spec
from modelport.spec.endpoint import EndpointSpec
from modelport.store.records import EndpointRecord, ReplicaRecord
from tests.support.fake_runtimes import ScriptedRuntime, handle_of

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEC = EndpointSpec.model_validate({"name": "chat", "model": {"repository": "org/chat"}})


def endpoint(**changes: Any) -> EndpointRecord:
    extra = dict(
        id=1, generation=2, good_generation=1, state="running", message="", ready_replicas=1,
        target_replicas=1, desired_replicas=None, update_error=None, created_at=AT, updated_at=AT,
    )  # fmt: skip
    record = EndpointRecord(**{**vars(fields_from_spec("default", SPEC)), **extra})
    return dataclasses.replace(record, **changes)


def replica(replica_id: str, generation: int, ready_after_s: float, phase: str = "ready") -> ReplicaRecord:
    ready_at = AT + timedelta(seconds=ready_after_s) if phase == "ready" else None
    return ReplicaRecord(
        id=replica_id, endpoint_id=1, generation=generation, runtime="scripted",
        handle=handle_of(replica_id).to_json(), phase=phase, restarts=0, last_error=None,
        started_at=AT, ready_at=ready_at, exited_at=None,
    )  # fmt: skip


async def no_call(_address: str) -> None:
    raise AssertionError("no sleep-mode engine here")


async def no_probe(_address: str) -> bool:
    raise AssertionError("no sleep-mode engine here")


def published(endpoint: EndpointRecord, replicas: list[ReplicaRecord]) -> list[str]:
    """The replica ids the table routes to for the endpoint."""
    revisions = RevisionCache()
    base = revision_from_spec(SPEC)
    revisions.add(
        {(1, 1): dataclasses.replace(base, revision="old"), (1, 2): dataclasses.replace(base, revision="new")}
    )
    table = RoutingTable()

    async def publish() -> None:  # the sleeper's tasks need a running loop, were any started
        sleeper = Sleeper(no_call, no_call, no_probe, lambda: None)
        RoutePublisher(table, ScriptedRuntime(), sleeper, revisions).publish([endpoint], replicas)
        await sleeper.close()

    asyncio.run(publish())
    view = table.get("default", "chat")
    assert view is not None
    assert {r.address for r in view.routes} <= {ScriptedRuntime().address(handle_of(r.id)) for r in replicas}
    if view.routes:
        assert view.revision == ("new" if view.routes[0].generation == 2 else "old")
    return [r.replica_id for r in view.routes]


def test_the_oldest_ready_replicas_serve_and_a_warm_standby_waits() -> None:
    replicas = [replica("young", 2, 30), replica("old", 2, 10), replica("starting", 2, 0, phase="starting")]
    assert published(endpoint(warm_standby=1), replicas) == ["old"]
    assert sorted(published(endpoint(warm_standby=0), replicas)) == ["old", "young"]


def test_the_last_generation_serves_until_the_new_one_is_ready() -> None:
    rollout = [replica("previous", 1, 0), replica("next", 2, 5, phase="starting")]
    assert published(endpoint(), rollout) == ["previous"]
    ready = [replica("previous", 1, 0), replica("next", 2, 5)]
    assert published(endpoint(), ready) == ["next"]
