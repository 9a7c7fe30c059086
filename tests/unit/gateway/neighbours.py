"""In-process neighbours for the gateway's tests: keys, endpoint views, request contexts, a usage
log that keeps its records in a list, and replicas on loopback (aiohttp servers, and a raw one
that drops every connection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from starlette.requests import Request

from modelport.auth.admin_token import token_hash
from modelport.auth.api_keys import KeyRing, Principal, new_key, secret_hash
from modelport.gateway.context import RequestContext
from modelport.gateway.routing import EndpointView, Route
from modelport.protocol.errors import dialect_for_path
from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.spec.traffic import Traffic
from modelport.store.records import ApiKeyRecord, RequestText, UsageRecord

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
ADMIN_TOKEN = "admin-token"


def keyring(**limits: Any) -> tuple[KeyRing, str, str]:
    """A ring with one inference key for every endpoint: (ring, key id, key)."""
    key_id, key = new_key()
    ring = KeyRing(token_hash(ADMIN_TOKEN))
    fields: dict[str, Any] = {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "token_budget": None,
        "budget_period": "day",
        "scopes": ["inference"],
        "endpoints": ["*"],
    }
    fields.update(limits)
    ring.put(ApiKeyRecord(id=key_id, name="k", secret_hash=secret_hash(key), created_at=NOW, expires_at=None,
                          revoked_at=None, rotated_to=None, **fields))  # fmt: skip
    return ring, key_id, key


def principal(ring: KeyRing, key: str) -> Principal:
    return ring.authenticate(f"Bearer {key}", NOW)


def endpoint(
    name: str = "chat",
    routes: tuple[Route, ...] = (),
    *,
    intent: Intent = Intent.ACTIVE,
    state: EndpointState = EndpointState.RUNNING,
    type: EndpointType = EndpointType.PROTECTED,
    traffic: Traffic | None = None,
    **fields: Any,
) -> EndpointView:
    return EndpointView(
        "default", name, type, intent, state, "", routes, traffic=traffic or Traffic(), **fields
    )


def context(
    path: str = "/v1/chat/completions",
    *,
    who: Principal | None = None,
    endpoint: str = "chat",
    client: str | None = "127.0.0.1",
    started: float = 0.0,
    hold_s: float = 120.0,
    query: str | None = "",
    method: str = "POST",
    request_id: str = "req-1",
) -> RequestContext:
    dialect = dialect_for_path(path)
    return RequestContext(request_id, "default", endpoint, path, method, query, dialect, client, started, NOW,
                          hold_s, who)  # fmt: skip


def request(
    headers: dict[str, str] | None = None,
    *,
    path: str = "/endpoints/default/chat/v1/chat/completions",
    method: str = "POST",
    query: bytes = b"",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    receive: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> Request:
    """A Starlette request as an ASGI server would hand it over."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": raw,
             "client": client, "server": ("127.0.0.1", 80), "scheme": "http", "root_path": ""}  # fmt: skip
    return Request(scope, receive) if receive is not None else Request(scope)


class UsageRecords:
    """Stands in for the usage log: keeps what the gateway records."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.texts: list[RequestText | None] = []

    def record(self, record: UsageRecord, text: RequestText | None = None) -> None:
        self.records.append(record)
        self.texts.append(text)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def replica(handler: Handler) -> AsyncIterator[str]:
    """An HTTP server on loopback answering every path with `handler`; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def dropping_replica() -> AsyncIterator[tuple[str, list[int]]]:
    """A replica that reads each request and closes the connection without answering, as one that
    crashed on it would; yields its URL and a list that counts the requests it read."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            seen.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


def closed_port() -> str:
    """The URL of a loopback port nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def sse(*events: str) -> bytes:
    return b"".join(b"data: " + e.encode() + b"\n\n" for e in events)
