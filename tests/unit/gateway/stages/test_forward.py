"""The upstream call (gateway/stages/forward.py) against replicas on loopback: what a replica
sees of the caller, which failures move on to the next replica and which end the request, and
that every replica's in-flight count comes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from starlette.datastructures import Headers

from modelport.gateway.errors import NotDelivered
from modelport.gateway.metering import prepare
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.releases import Releases
from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.gateway.stages.forward import Forwarded, Forwarder, Ready
from modelport.gateway.translation import translation_for
from modelport.gateway.upstream import Upstream
from modelport.protocol.errors import APIError

from ..neighbours import closed_port, context, dropping_replica, endpoint, replica

BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
CALLER = {"authorization": "Bearer mp_callers_own_key", "content-type": "application/json",
          "user-agent": "sdk/1.0", "x-forwarded-for": "6.6.6.6", "forwarded": "for=6.6.6.6",
          "x-real-ip": "6.6.6.6", "connection": "keep-alive", "x-custom": "kept",
          "x-request-id": "the callers own"}  # fmt: skip


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    headers = {k.lower(): request.headers.getall(k) for k in request.headers}
    return web.json_response({"path": request.path, "headers": headers, "body": body.decode()})


def answering(status: int) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": {"message": "busy"}}, status=status)

    return handle


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


class Setup:
    def __init__(self, *addresses: str, first_byte_s: float = 30.0, **view: Any) -> None:
        routes = tuple(Route(f"replica-{i}", a, 1, token=f"token-{i}") for i, a in enumerate(addresses))
        self.view: EndpointView = endpoint(routes=routes, **view)
        self.table = RoutingTable()
        self.table.publish({("default", "chat"): self.view})
        self.lost: list[str] = []
        self.client = Upstream(first_byte_s=first_byte_s)
        self.forwarder = Forwarder(self.table, self.client, GatewayMetrics(), self.lost.append, lambda: 5.0)
        self.releases = Releases()

    async def forward(self, path: str = "/v1/chat/completions", body: bytes = BODY, **kw: Any) -> Forwarded:
        call = prepare("POST", path, "", body, self.view.model_name, self.view.task)
        ready = Ready(self.view, translation_for(call, self.view), 0.0)
        ctx = context(path, client="10.0.0.7", request_id="rid-9")
        return await self.forwarder.forward(ctx, ready, call, Headers(CALLER), 1.0, self.releases, **kw)

    def lost_count(self) -> float:
        labels = {"namespace": "default", "endpoint": "chat"}
        value = self.forwarder.metrics.registry.get_sample_value(
            "modelport_gateway_replica_lost_total", labels
        )
        return value or 0.0


def test_a_replica_sees_its_own_token_and_the_gateways_view_of_the_caller() -> None:
    async def go() -> tuple[Forwarded, dict[str, Any], dict[str, int]]:
        async with replica(echo) as url:
            setup = Setup(url)
            forwarded = await setup.forward()
            seen = json.loads(await forwarded.response.read())
            in_flight = dict(setup.table.in_flight)
            setup.releases.release_all()
            await setup.client.close()
            return forwarded, seen, in_flight | {"after": sum(setup.table.in_flight.values())}

    forwarded, seen, in_flight = asyncio.run(go())
    headers = {k: v[0] for k, v in seen["headers"].items()}
    assert seen["headers"]["x-request-id"] == ["rid-9"]  # the gateway's only, never a second of the caller's
    assert headers["authorization"] == "Bearer token-0"  # never the caller's key
    assert headers["x-forwarded-for"] == "10.0.0.7"  # the address the gateway decided, not the caller's chain
    assert "forwarded" not in headers and "x-real-ip" not in headers
    assert headers["x-request-id"] == "rid-9" and headers["accept-encoding"] == "identity"
    assert headers["x-custom"] == "kept" and headers["user-agent"] == "sdk/1.0"
    assert forwarded.route.replica_id == "replica-0" and forwarded.view.name == "chat"
    assert forwarded.first_byte_s == 5.0 and forwarded.before_s == 4.0  # clock 5, arrived 0, waited 1
    assert in_flight == {"replica-0": 1, "after": 0}


def test_a_translated_call_goes_to_the_openai_route_the_engine_has() -> None:
    async def go() -> dict[str, Any]:
        async with replica(echo) as url:
            setup = Setup(url, apis=frozenset({"openai"}))
            forwarded = await setup.forward("/generate", json.dumps({"inputs": "hi"}).encode())
            seen: dict[str, Any] = json.loads(await forwarded.response.read())
            await setup.client.close()
            return seen

    seen = asyncio.run(go())
    assert seen["path"] == "/v1/completions" and json.loads(seen["body"])["prompt"] == "hi"


def test_a_refused_connection_moves_on_to_the_next_replica() -> None:
    async def go() -> tuple[str, dict[str, int]]:
        async with replica(echo) as url:
            setup = Setup(closed_port(), url)
            setup.table.in_flight["replica-1"] = 5  # the busier one: tried second
            forwarded = await setup.forward()
            setup.table.in_flight["replica-1"] -= 5
            await forwarded.response.close()
            in_flight = dict(setup.table.in_flight)
            await setup.client.close()
            return forwarded.route.replica_id, in_flight

    served_by, in_flight = asyncio.run(go())
    assert served_by == "replica-1"
    assert in_flight == {"replica-1": 1}  # the one that never got it is released at once


def test_no_replica_answering_is_a_503_that_was_never_delivered() -> None:
    async def go() -> APIError:
        setup = Setup(closed_port(), closed_port())
        with pytest.raises(NotDelivered) as err:
            await setup.forward()
        assert setup.table.in_flight == {}
        await setup.client.close()
        return err.value

    err = asyncio.run(go())
    assert err.status == 503 and err.code == "no_ready_replica"


def test_a_replica_that_drops_the_request_is_withdrawn_and_the_request_goes_nowhere_else() -> None:
    async def go() -> tuple[APIError, int, Setup]:
        async with dropping_replica() as (dropping, seen), replica(echo) as healthy:
            setup = Setup(dropping, healthy)
            setup.table.in_flight["replica-1"] = 5  # the dropping one is tried first
            with pytest.raises(NotDelivered) as err:
                await setup.forward()
            setup.table.in_flight["replica-1"] -= 5
            await setup.client.close()
            return err.value, len(seen), setup

    err, tries, setup = asyncio.run(go())
    assert err.status == 502 and err.code == "upstream_dropped"
    assert tries == 2  # once more on a fresh connection (a stale pooled one looks the same), then no more
    assert setup.lost == ["replica-0"] and setup.lost_count() == 1
    assert [r.replica_id for r in setup.table.endpoints[("default", "chat")].routes] == ["replica-1"]
    assert setup.table.in_flight == {"replica-1": 0}  # and the healthy one never got it


def test_a_replica_that_does_not_begin_answering_in_time_is_a_504_it_was_delivered() -> None:
    async def go() -> APIError:
        async with replica(hang) as url:
            setup = Setup(url, first_byte_s=0.2)
            with pytest.raises(APIError) as err:
                await setup.forward()
            assert setup.table.in_flight == {}
            await setup.client.close()
            return err.value

    err = asyncio.run(go())
    assert err.status == 504 and err.code == "upstream_timeout"
    assert not isinstance(err, NotDelivered)  # the replica had the prompt: it is charged


def test_with_a_fallback_a_replicas_503_is_refused_so_the_fallback_may_serve() -> None:
    async def go() -> tuple[APIError, int]:
        async with replica(answering(503)) as url:
            setup = Setup(url)
            with pytest.raises(NotDelivered) as err:
                await setup.forward(can_fall_back=True)
            without = await setup.forward()  # no fallback: the replica's answer is the answer
            await without.response.close()
            await setup.client.close()
            return err.value, without.response.status_code

    err, status = asyncio.run(go())
    assert err.status == 503 and status == 503
