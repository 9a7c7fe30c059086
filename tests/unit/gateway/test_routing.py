"""The gateway's routing table: least-busy choice, rotation among equals, withdraw and drain."""

from __future__ import annotations

import asyncio

from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.spec.endpoint import EndpointState, EndpointType, Intent


def view(*replica_ids: str) -> EndpointView:
    routes = tuple(Route(rid, f"http://127.0.0.1:{9000 + i}", 1) for i, rid in enumerate(replica_ids))
    return EndpointView(
        "default", "chat", EndpointType.PROTECTED, Intent.ACTIVE, EndpointState.RUNNING, "", routes
    )


def test_equal_replicas_share_the_load_and_busy_ones_are_avoided() -> None:
    table = RoutingTable()
    table.publish({("default", "chat"): view("a", "b")})
    ep = table.get("default", "chat")
    assert ep is not None
    assert {table.pick(ep).replica_id for _ in range(4)} == {"a", "b"}  # type: ignore[union-attr]
    release = table.acquire("a")
    assert [table.pick(ep).replica_id for _ in range(3)] == ["b", "b", "b"]  # type: ignore[union-attr]
    release()
    release()  # idempotent
    assert table.in_flight == {}
    assert table.pick(ep, frozenset({"a", "b"})) is None


def test_withdrawn_replica_gets_no_traffic_and_drains() -> None:
    table = RoutingTable()
    table.publish({("default", "chat"): view("old", "new")})
    release = table.acquire("old")
    table.withdraw("old")
    ep = table.get("default", "chat")
    assert ep is not None and [r.replica_id for r in ep.routes] == ["new"]

    async def drain() -> tuple[bool, bool]:
        busy = await table.drained("old", timeout_s=0.05, poll_s=0.01)
        asyncio.get_running_loop().call_later(0.05, release)
        done = await table.drained("old", timeout_s=2, poll_s=0.01)
        return busy, done

    assert asyncio.run(drain()) == (False, True)
