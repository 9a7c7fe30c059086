"""One request down the whole pipeline (gateway/proxy.py), called as an ASGI server would, with
replicas on loopback: ids, holds, clients that leave, fallbacks and replicas that fail."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

from modelport.auth.api_keys import KeyRing
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.proxy import Gateway, GatewaySettings
from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.gateway.upstream import Upstream
from modelport.spec.endpoint import EndpointState, Intent
from modelport.spec.traffic import Traffic

from .neighbours import UsageRecords, dropping_replica, endpoint, keyring, replica

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
STARTING = endpoint(intent=Intent.SCALED_TO_ZERO, state=EndpointState.SCALED_TO_ZERO)


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""


class Setup:
    def __init__(self, *views: EndpointView, hold_s: float = 120.0, **limits: Any) -> None:
        self.ring: KeyRing
        self.ring, self.key_id, self.key = keyring(**limits)
        self.table = RoutingTable()
        self.table.publish({("default", v.name): v for v in views})
        self.usage = UsageRecords()
        self.woken: list[str] = []
        self.gateway = Gateway(self.table, self.ring, Upstream(), self.wake_up, self.usage,  # type: ignore[arg-type]
                               GatewayMetrics(), GatewaySettings(hold_s=hold_s))  # fmt: skip

    async def wake_up(self, namespace: str, name: str) -> None:
        self.woken.append(name)

    async def call(
        self, body: Any = CHAT, headers: dict[str, str] | None = None, *, leave_after_s: float | None = None,
        endpoint: str = "chat",
    ) -> Answer:  # fmt: skip
        """POST the body; the client disconnects after `leave_after_s` (None: once answered)."""
        answer, done = Answer(), asyncio.Event()
        raw = json.dumps(body).encode()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            if leave_after_s is None:
                await done.wait()
            else:
                await asyncio.sleep(leave_after_s)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                if not message.get("more_body"):
                    done.set()

        all_headers = {
            "authorization": f"Bearer {self.key}",
            "content-type": "application/json",
            **(headers or {}),
        }
        scope = {
            "type": "http",
            "method": "POST",
            "path": f"/endpoints/default/{endpoint}/v1/chat/completions",
            "query_string": b"",
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()],
        }
        await self.gateway.asgi(scope, receive, send)
        return answer

    def metric(self, name: str, **labels: str) -> float:
        value = self.gateway.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


async def echo(request: web.Request) -> web.Response:
    await request.read()
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    ids = request.headers.getall("x-request-id", [])
    return web.json_response({"seen_id": ids[0] if len(ids) == 1 else ids, "usage": usage})


def answering(status: int) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": {"message": "overloaded"}}, status=status)

    return handle


def serving(url: str, name: str = "chat", **fields: Any) -> EndpointView:
    return endpoint(name, (Route(f"{name}-replica", url, 1, token="t"),), **fields)


def test_a_well_formed_request_id_goes_through_and_a_malformed_one_is_replaced() -> None:
    async def go() -> list[tuple[str, str]]:
        async with replica(echo) as url:
            s = Setup(serving(url))
            seen = []
            for given in ("trace-42", "bad id\twith tab" + "x" * 80):
                answer = await s.call(headers={"x-request-id": given})
                seen.append((answer.headers["x-request-id"], json.loads(answer.body)["seen_id"]))
            await s.gateway.forwarder.client.close()
            return seen

    (kept, kept_seen), (fresh, fresh_seen) = asyncio.run(go())
    assert kept == kept_seen == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{32}", fresh) and fresh_seen == fresh


def test_a_client_that_leaves_mid_hold_is_recorded_499_and_holds_nothing() -> None:
    async def go() -> tuple[Answer, Setup, float]:
        s = Setup(STARTING, token_budget=100_000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await s.call(leave_after_s=0.05)
        return answer, s, loop.time() - started

    answer, s, took = asyncio.run(go())
    assert took < 5 and answer.status == 499 and s.woken == ["chat"]
    assert [(r.status, r.prompt_tokens) for r in s.usage.records] == [(499, 0)]  # no replica had it
    admission = s.gateway.admissions.of("default", "chat")
    assert (admission.held, admission.outstanding, admission.arrivals) == (0, 0, 1)
    assert s.gateway.limiter.reserved == {}


def test_a_nan_hold_time_is_the_gateways_own_and_the_503_says_to_retry() -> None:
    async def go() -> Answer:
        s = Setup(STARTING, hold_s=0.05)
        return await s.call(headers={"x-scale-up-timeout": "nan"})

    answer = asyncio.run(go())
    assert answer.status == 503 and answer.headers["x-should-retry"] == "true"
    assert answer.headers["retry-after"] == "5"
    assert json.loads(answer.body)["error"]["code"] == "scaled_to_zero"


def test_a_replica_refusing_with_503_hands_the_request_to_the_fallback() -> None:
    async def go() -> tuple[Answer, Setup]:
        async with replica(answering(503)) as busy, replica(echo) as healthy:
            s = Setup(serving(busy, traffic=Traffic(fallback="backup")), serving(healthy, "backup"))
            answer = await s.call()
            await s.gateway.forwarder.client.close()
            return answer, s

    answer, s = asyncio.run(go())
    assert answer.status == 200
    [record] = s.usage.records
    assert (record.served_by, record.policy, record.prompt_tokens) == ("backup", "fallback", 3)
    labels = {"namespace": "default", "endpoint": "chat", "policy": "fallback", "target": "backup"}
    assert s.metric("modelport_gateway_policy_total", **labels) == 1
    for name in ("chat", "backup"):  # the first endpoint's slot was given back before the fallback's
        assert s.gateway.admissions.of("default", name).in_flight == 0
    assert s.table.in_flight == {}


def test_a_replica_dropping_the_connection_is_a_502_not_replayed_and_not_charged() -> None:
    async def go() -> tuple[Answer, Setup, int]:
        async with dropping_replica() as (dropping, seen), replica(echo) as healthy:
            view = endpoint(routes=(Route("r-drop", dropping, 1), Route("r-ok", healthy, 1)))
            s = Setup(view, token_budget=100_000)
            s.table.in_flight["r-ok"] = 9  # the dropping replica is picked first
            answer = await s.call()
            s.table.in_flight.pop("r-ok")
            await s.gateway.forwarder.client.close()
            return answer, s, len(seen)

    answer, s, tries = asyncio.run(go())
    assert answer.status == 502 and json.loads(answer.body)["error"]["code"] == "upstream_dropped"
    assert tries == 2  # the same replica on a fresh connection; never the other one
    assert [(r.status, r.prompt_tokens) for r in s.usage.records] == [(502, 0)]
    assert s.gateway.limiter.reserved == {} and s.table.in_flight == {}


def test_a_caller_without_a_key_is_refused_without_a_record_or_a_label_it_chose() -> None:
    async def go() -> tuple[Answer, Setup]:
        s = Setup(endpoint())
        return await s.call(headers={"authorization": ""}, endpoint="probe-me"), s

    answer, s = asyncio.run(go())
    assert answer.status == 401 and json.loads(answer.body)["error"]["code"] == "invalid_api_key"
    assert "x-request-id" in answer.headers and s.usage.records == []
    assert s.metric("modelport_gateway_refused_total", namespace="-", endpoint="-", reason="401") == 1


def test_a_client_that_leaves_a_held_stream_gives_its_place_back() -> None:
    async def go() -> tuple[Answer, Setup]:
        s = Setup(STARTING)
        return await s.call({**CHAT, "stream": True}, leave_after_s=0.05), s

    answer, s = asyncio.run(go())
    assert answer.status == 200 and answer.body.startswith(b": waiting for a replica")
    assert s.gateway.admissions.of("default", "chat").held == 0
    assert [r.status for r in s.usage.records] == [200]  # answered at once: the stream had begun
