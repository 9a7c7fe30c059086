"""A request's target made ready (gateway/stages/hold.py over a real RoutingTable, AdmissionTable
and, for held streams, a replica on loopback): refused at once when down, handed to a fallback,
held while the endpoint starts (a stream answered at once with keep-alives), then a slot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import pytest
from aiohttp import web
from starlette.datastructures import Headers

from modelport.gateway.admission import AdmissionTable
from modelport.gateway.limits import Limiter
from modelport.gateway.metering import prepare
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.releases import Releases
from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.gateway.stages.admit import Admitted, Admitter
from modelport.gateway.stages.forward import Forwarder, Ready
from modelport.gateway.stages.hold import KEEP_ALIVE, WAITING, HeldStream, Holder, hold, refuse_if_down
from modelport.gateway.stages.route import Target
from modelport.gateway.upstream import Upstream
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointState, Intent

from ..neighbours import NOW, context, endpoint, replica, sse

CHAT = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
).encode()
STREAM = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()
STARTING = endpoint(intent=Intent.SCALED_TO_ZERO, state=EndpointState.SCALED_TO_ZERO)


class Setup:
    def __init__(
        self, view: EndpointView = STARTING, *, max_held: int = 1000, keepalive_s: float = 5.0
    ) -> None:
        self.table = RoutingTable()
        self.table.publish({("default", view.name): view})
        self.woken: list[str] = []
        self.admissions = AdmissionTable()
        self.client = Upstream()
        admitter = Admitter(Limiter(), self.admissions, GatewayMetrics(), max_held, lambda: 0.0, lambda: NOW)
        forwarder = Forwarder(self.table, self.client, GatewayMetrics(), lambda _: None, lambda: 0.0)
        self.holder = Holder(
            self.table, self.wake_up, self.admissions, admitter, forwarder, lambda: 0.0, keepalive_s
        )
        self.releases = Releases()

    async def wake_up(self, namespace: str, name: str) -> None:
        self.woken.append(name)

    def admitted(self, body: bytes = CHAT, path: str = "/v1/chat/completions") -> Admitted:
        return Admitted(prepare("POST", path, "", body), None, None)

    def ready(
        self, target: Target, admitted: Admitted | None = None, hold_s: float = 5.0
    ) -> Coroutine[Any, Any, Ready | HeldStream]:
        return self.holder.ready(context(hold_s=hold_s), target, admitted or self.admitted(), self.releases)

    def publish_ready(self, address: str = "http://127.0.0.1:9") -> EndpointView:
        ready = endpoint(routes=(Route("r0", address, 1),))
        self.table.publish({("default", "chat"): ready})
        return ready


def test_paused_and_failed_endpoints_answer_at_once_without_their_logs() -> None:
    with pytest.raises(APIError) as err:
        refuse_if_down(endpoint(intent=Intent.PAUSED, state=EndpointState.PAUSED))
    assert err.value.status == 503 and err.value.code == "endpoint_paused"
    failed = EndpointView(
        "default", "chat", STARTING.type, Intent.ACTIVE, EndpointState.FAILED, "Traceback: secret"
    )
    with pytest.raises(APIError) as err:
        refuse_if_down(failed)
    assert err.value.code == "endpoint_failed" and "secret" not in err.value.message


def test_an_endpoint_with_a_replica_gives_a_slot_at_once() -> None:
    async def go() -> tuple[Ready | HeldStream, Setup]:
        s = Setup()
        view = s.publish_ready()
        return await s.ready(Target(view)), s

    ready, s = asyncio.run(go())
    assert isinstance(ready, Ready) and ready.waited_s == 0.0 and ready.translation is None
    admission = s.admissions.of("default", "chat")
    assert (admission.arrivals, admission.in_flight) == (1, 1)
    s.releases.release_all()
    assert admission.in_flight == 0


def test_a_call_the_engine_lacks_is_translated_once_ready() -> None:
    async def go() -> Ready | HeldStream:
        s = Setup()
        view = endpoint(routes=(Route("r0", "http://x", 1),), apis=frozenset({"openai"}))
        return await s.ready(Target(view), s.admitted(json.dumps({"inputs": "hi"}).encode(), "/generate"))

    ready = asyncio.run(go())
    assert isinstance(ready, Ready) and ready.translation is not None
    assert ready.translation.path == "/v1/completions"


def test_a_request_is_held_until_a_replica_is_ready_waking_a_scaled_to_zero_endpoint() -> None:
    async def go() -> tuple[Ready | HeldStream, Setup]:
        s = Setup()
        waiting = asyncio.create_task(s.ready(Target(STARTING)))
        await asyncio.sleep(0.01)
        assert s.admissions.of("default", "chat").held == 1  # counted for the autoscaler
        s.publish_ready()
        return await asyncio.wait_for(waiting, 2), s

    ready, s = asyncio.run(go())
    assert isinstance(ready, Ready) and ready.view.routes and s.woken == ["chat"]
    assert s.admissions.of("default", "chat").held == 0  # the hold place is given back as the hold ends


def test_a_hold_that_times_out_is_a_503_saying_so() -> None:
    async def go() -> APIError:
        s = Setup()
        with pytest.raises(APIError) as err:
            await s.ready(Target(STARTING), hold_s=0.05)
        assert s.admissions.of("default", "chat").held == 0
        return err.value

    err = asyncio.run(go())
    assert err.status == 503 and err.code == "scaled_to_zero" and "X-Scale-Up-Timeout" in err.message


def test_an_endpoint_deleted_while_a_request_is_held_is_a_404() -> None:
    async def go() -> APIError:
        s = Setup()
        waiting = asyncio.create_task(s.ready(Target(STARTING)))
        await asyncio.sleep(0.01)
        s.table.publish({})
        with pytest.raises(APIError) as err:
            await asyncio.wait_for(waiting, 2)
        return err.value

    assert asyncio.run(go()).status == 404


def test_a_client_that_leaves_mid_hold_gives_its_place_back() -> None:
    async def go() -> int:
        s = Setup()
        waiting = asyncio.create_task(s.ready(Target(STARTING)))
        await asyncio.sleep(0.01)
        waiting.cancel()  # what the client watch does when the client leaves
        with pytest.raises(asyncio.CancelledError):
            await waiting
        s.releases.release_all()
        return s.admissions.of("default", "chat").held

    assert asyncio.run(go()) == 0


def test_with_a_fallback_an_endpoint_without_replicas_is_woken_but_not_waited_for() -> None:
    async def go() -> tuple[APIError, list[str]]:
        s = Setup()
        with pytest.raises(APIError) as err:
            await s.ready(Target(STARTING, can_fall_back=True))
        return err.value, s.woken

    err, woken = asyncio.run(go())
    assert err.status == 503 and err.code == "no_ready_replica" and woken == ["chat"]


def test_a_stream_is_answered_at_once_while_its_endpoint_starts() -> None:
    async def go() -> Ready | HeldStream:
        s = Setup(max_held=1)
        held = await s.ready(Target(STARTING), s.admitted(STREAM))
        assert s.admissions.of("default", "chat").held == 1
        with pytest.raises(APIError) as err:  # the endpoint's one place is taken
            await s.ready(Target(STARTING), s.admitted(STREAM))
        assert err.value.status == 429
        return held

    held = asyncio.run(go())
    assert isinstance(held, HeldStream) and held.ended().status == 200 and not held.ended().reached_replica


async def stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(sse(json.dumps({"choices": [{"index": 0, "delta": {"content": "tok"}}]}), "[DONE]"))
    return response


def test_a_held_stream_sends_keep_alives_then_the_replicas_stream() -> None:
    async def go() -> tuple[list[bytes], HeldStream]:
        s = Setup(keepalive_s=0.02)
        async with replica(stream) as url:
            admitted = s.admitted(STREAM)
            held = await s.ready(Target(STARTING), admitted)
            assert isinstance(held, HeldStream)
            body = s.holder.body(held, context(), admitted, s.releases, Headers({}), 0.0)
            chunks = [await anext(body), await anext(body)]
            s.publish_ready(url)
            chunks += [chunk async for chunk in body]
            end = held.ended()
            assert end.forwarded is not None
            await end.forwarded.response.close()
            await s.client.close()
            return chunks, held

    chunks, held = asyncio.run(go())
    assert chunks[0] == WAITING and chunks[1] == KEEP_ALIVE
    assert b"tok" in b"".join(chunks[2:])
    end = held.ended()
    assert end.status == 200 and end.reached_replica and end.relayed is not None
    assert end.relayed.completion_tokens == 1


def test_a_held_stream_whose_endpoint_never_starts_ends_with_an_error_event() -> None:
    async def go() -> tuple[list[bytes], HeldStream]:
        s = Setup()
        admitted = s.admitted(STREAM)
        held = await s.ready(Target(STARTING), admitted)
        assert isinstance(held, HeldStream)
        body = s.holder.body(held, context(hold_s=0.05), admitted, s.releases, Headers({}), 0.0)
        return [chunk async for chunk in body], held

    chunks, held = asyncio.run(go())
    assert chunks[0] == WAITING and b"scaled_to_zero" in chunks[-1]
    assert held.ended().status == 503 and not held.ended().reached_replica


def test_hold_gives_the_place_back_however_it_ends() -> None:
    async def go() -> list[str]:
        given_back: list[str] = []
        s = Setup()
        with pytest.raises(APIError):
            await hold(STARTING, 0.01, s.table, s.wake_up, lambda: given_back.append("place"))
        return given_back

    assert asyncio.run(go()) == ["place"]
