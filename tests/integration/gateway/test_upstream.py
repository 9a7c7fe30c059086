"""The gateway's client to replicas against real loopback servers that close connections
(gateway/upstream.py): what is tried again, where, and what is reported."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from modelport.gateway.upstream import Dropped, NotAnswered, Upstream

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def serve(close_first: int) -> tuple[asyncio.Server, str, Callable[[], int]]:
    """A server that reads each request, closes the first `close_first` connections without an
    answer and answers the rest; returns it, its URL and a count of requests it read."""
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        while await reader.readuntil(b"\r\n\r\n"):
            seen += 1
            if seen <= close_first:
                writer.close()
                return
            writer.write(OK)
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat/completions", lambda: seen


def run(close_first: int) -> tuple[int | BaseException, int]:
    async def go() -> tuple[int | BaseException, int]:
        server, url, seen = await serve(close_first)
        upstream = Upstream()
        try:
            response = await upstream.send("POST", url, "", b"{}", [("content-type", "application/json")])
            outcome: int | BaseException = response.status_code
            await response.read()
        except (Dropped, NotAnswered) as exc:
            outcome = exc
        finally:
            await upstream.close()
            server.close()
        return outcome, seen()

    return asyncio.run(go())


def test_a_connection_closed_once_is_tried_again_on_a_new_one() -> None:
    """As a pooled connection the server was closing when it was reused."""
    outcome, seen = run(close_first=1)
    assert outcome == 200 and seen == 2


def test_a_replica_that_closes_twice_is_reported_dropped_and_not_tried_a_third_time() -> None:
    outcome, seen = run(close_first=10)
    assert isinstance(outcome, Dropped) and seen == 2


def test_a_refused_connection_is_not_answered() -> None:
    async def go() -> BaseException:
        upstream = Upstream()
        try:
            with pytest.raises(NotAnswered) as info:
                await upstream.send("POST", "http://127.0.0.1:9/x", "", b"", [])
            return info.value
        finally:
            await upstream.close()

    assert isinstance(asyncio.run(go()), NotAnswered)
