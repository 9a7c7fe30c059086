"""Relaying an answer (gateway/stages/relay.py) from replicas on loopback: chunk by chunk, its
usage metered (and the usage the gateway asked for itself taken out), a replica that fails
mid-answer withdrawn, and what the relay reports once it has ended."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from modelport.gateway.metering import Call, prepare
from modelport.gateway.routing import Route
from modelport.gateway.stages.forward import Forwarded
from modelport.gateway.stages.relay import Relay, Relayed, relayed_response
from modelport.gateway.transcript import Transcript
from modelport.gateway.upstream import BrokenAnswer, Upstream

from ..neighbours import endpoint, replica, sse

TOKEN = json.dumps({"choices": [{"index": 0, "delta": {"content": "tok"}}]})
USAGE = json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
STREAM = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True})


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "x-engine": "e"})
    await response.prepare(request)
    for _ in range(3):
        await response.write(sse(TOKEN))
    await response.write(sse(USAGE, "[DONE]"))
    return response


async def dies_mid_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(sse(TOKEN, TOKEN))
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return response


async def dies_mid_json(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"choices": [')
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return response


async def json_answer(request: web.Request) -> web.Response:
    usage = {"prompt_tokens": 4, "completion_tokens": 2}
    return web.json_response({"choices": [{"message": {"content": "hello"}}], "usage": usage})


class Relayer:
    def __init__(self, url: str, call: Call, transcript: Transcript | None = None) -> None:
        self.url, self.call, self.transcript = url, call, transcript
        self.client = Upstream()
        self.withdrawn: list[tuple[str, str, str]] = []

    async def relay(self, status: int | None = None) -> Relay:
        response = await self.client.send("POST", self.url + "/v1/chat/completions", "", self.call.body, [])
        route = Route("replica-0", self.url, 1)
        forwarded = Forwarded(response, route, endpoint("served"), None, 0.01, 0.001)
        withdraw = lambda route, ns, name, why: self.withdrawn.append((route.replica_id, ns, name))  # noqa: E731
        return Relay(forwarded, self.call, self.transcript, lambda: 1.0, withdraw, status)

    async def drain(self, relay: Relay) -> bytes:
        return b"".join([chunk async for chunk in relay.chunks()])


def run(handler: Any, call: Call, *, transcript: Transcript | None = None, status: int | None = None) -> Any:
    async def go() -> tuple[bytes | BaseException, Relayed, Relayer]:
        async with replica(handler) as url:
            relayer = Relayer(url, call, transcript)
            relay = await relayer.relay(status)
            try:
                out: bytes | BaseException = await relayer.drain(relay)
            except BrokenAnswer as exc:
                out = exc
            await relay.forwarded.response.close()
            await relayer.client.close()
            return out, relay.relayed(), relayer

    return asyncio.run(go())


def test_a_stream_is_relayed_less_the_usage_the_gateway_asked_for_and_metered() -> None:
    call = prepare("POST", "/v1/chat/completions", "", STREAM.encode())
    assert call.strip_usage  # the client did not ask for usage: the gateway did
    out, relayed, _ = run(stream, call)
    assert out == sse(TOKEN, TOKEN, TOKEN, "[DONE]")
    assert relayed == Relayed(200, 7, 3, True, 0.0)


def test_a_json_answer_is_passed_on_as_it_is_and_its_usage_read() -> None:
    out, relayed, _ = run(json_answer, prepare("POST", "/v1/chat/completions", "", b"{}"))
    assert json.loads(out)["usage"]["completion_tokens"] == 2
    assert (relayed.status, relayed.prompt_tokens, relayed.completion_tokens, relayed.sse) == (
        200,
        4,
        2,
        False,
    )


def test_a_replica_that_fails_mid_stream_ends_it_with_an_error_event_and_is_withdrawn() -> None:
    call = prepare("POST", "/v1/chat/completions", "", STREAM.encode())
    out, relayed, relayer = run(dies_mid_stream, call)
    assert isinstance(out, bytes)
    events = out.split(b"\n\n")
    assert events[:2] == [b"data: " + TOKEN.encode()] * 2
    assert b"failed mid-answer" in events[2] and b'"server_error"' in events[2]  # OpenAI shape
    assert relayed.status == 502 and relayed.completion_tokens == 2  # what reached the client is charged
    assert relayer.withdrawn == [("replica-0", "default", "served")]


def test_a_json_answer_cut_mid_body_cannot_be_ended_cleanly() -> None:
    out, relayed, relayer = run(dies_mid_json, prepare("POST", "/v1/chat/completions", "", b"{}"))
    assert isinstance(out, BrokenAnswer)
    assert relayed.status == 502 and relayer.withdrawn == [("replica-0", "default", "served")]


def test_a_relay_that_never_began_reports_nothing_relayed() -> None:
    async def go() -> Relayed:
        async with replica(json_answer) as url:
            relayer = Relayer(url, prepare("POST", "/v1/chat/completions", "", b"{}"))
            relay = await relayer.relay()
            await relay.forwarded.response.close()
            await relayer.client.close()
            return relay.relayed()

    assert asyncio.run(go()) == Relayed(200, 0, 0, False, 0.0)


def test_a_held_stream_records_200_unless_the_replica_fails() -> None:
    call = prepare("POST", "/v1/chat/completions", "", STREAM.encode())
    assert run(stream, call, status=200)[1].status == 200
    assert run(dies_mid_stream, call, status=200)[1].status == 502


def test_the_transcript_of_an_endpoint_that_keeps_texts_gets_the_answer() -> None:
    call = prepare("POST", "/v1/chat/completions", "", STREAM.encode())
    transcript = Transcript(STREAM.encode(), 1)
    run(stream, call, transcript=transcript)
    assert json.loads(transcript.completion()) == ["toktoktok"]


@pytest.mark.parametrize(("body", "keeps_length"), [(b"{}", True), (STREAM.encode(), False)])
def test_the_response_drops_hop_by_hop_headers_and_a_length_the_relay_changes(
    body: bytes, keeps_length: bool
) -> None:
    async def go() -> dict[str, str]:
        async with replica(json_answer) as url:
            relayer = Relayer(url, prepare("POST", "/v1/chat/completions", "", body))
            relay = await relayer.relay()

            async def closed() -> None:
                await relay.forwarded.response.close()

            response = relayed_response(relay, closed)
            headers = dict(response.headers)
            await relay.forwarded.response.close()
            await relayer.client.close()
            return headers

    headers = asyncio.run(go())
    assert "connection" not in headers and "transfer-encoding" not in headers
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert ("content-length" in headers) is keeps_length
