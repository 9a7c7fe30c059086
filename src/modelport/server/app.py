"""The engine server's ASGI app: middleware, error rendering, health and metrics.

A replica whose engine loop dies stops serving and `run` returns 1, so `modelport serve`
exits non-zero and the control plane restarts it (its /health answers 503 meanwhile).

Middleware order (outermost first): the replica's token (when the control plane set one) →
body-size limit → request id → routes. Errors are rendered in the dialect of the route that was
called, so the OpenAI SDK, the TGI client and TEI clients each see the error shape they parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport import envs
from modelport.engine import startup
from modelport.protocol.errors import APIError
from modelport.protocol.http import BodyLimitMiddleware, error_response
from modelport.server import classify_routes, embed_routes, openai_routes, task_routes, tgi_routes
from modelport.server.state import ServerState
from modelport.version import __version__

log = logging.getLogger("modelport.server")


# after the engine died, in-flight requests have this long to get their error before the
# server stops without waiting for them
_DEATH_DRAIN_S = 10.0


def create_app(state: ServerState, api: str = "all", replica_token: str | None = None) -> FastAPI:
    """api "openai" serves only /v1/* (plus /health and /metrics), as vLLM or llama.cpp do.
    `replica_token`: what callers must send (None: MODELPORT_REPLICA_TOKEN; empty: no check)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_stop_when_engine_dies(app))
        yield
        watcher.cancel()

    app = FastAPI(title="modelport engine server", version=__version__, lifespan=lifespan)
    app.state.mp = state
    app.state.on_engine_death = None

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[Any] = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            message, param = "the request body is not valid JSON", None
        else:
            message = f"invalid request: {param or 'body'}: {first.get('msg')}"
        return error_response(request.url.path, APIError(400, message, param=param, error_type="validation"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request.url.path, APIError(500, f"internal error ({type(exc).__name__})"))

    @app.get("/health")
    async def health() -> Response:
        if not state.healthy():
            return JSONResponse({"error": "unhealthy", "error_type": "healthcheck"}, status_code=503)
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = generate_latest(startup.registry)
        if state.llm is not None:
            body += generate_latest(state.llm.metrics.registry)
        if state.embedder is not None:
            body += generate_latest(state.embedder.metrics.registry)
        if state.tasks is not None:
            body += generate_latest(state.tasks.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routers = (
        openai_routes.router,
        embed_routes.router,
        task_routes.router,
        classify_routes.router,
        tgi_routes.router,
    )
    for router in routers:
        if api == "openai":
            router = APIRouter(routes=[r for r in router.routes if getattr(r, "path", "").startswith("/v1/")])
        app.include_router(router)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=state.max_body_bytes)
    token = envs.REPLICA_TOKEN.get() if replica_token is None else replica_token
    if token:  # outermost: a caller without the token is refused before its body is read
        app.add_middleware(ReplicaAuthMiddleware, token=token)
    return app


class RequestIdMiddleware:
    """Echo the caller's X-Request-ID (or a new one) on the answer, and log each request at debug.
    Plain ASGI: Starlette's BaseHTTPMiddleware costs a task and a stream copy per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id")
        rid = given or uuid.uuid4().hex.encode()
        start = time.monotonic()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid)]}
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s %s %d %.1fms",
                        scope.get("method"),
                        scope.get("path"),
                        message["status"],
                        (time.monotonic() - start) * 1000,
                    )
            await send(message)

        await self.app(scope, receive, send_with_id)


class ReplicaAuthMiddleware:
    """Only the gateway calls a replica: every route but /health and /metrics (probed and scraped
    by the control plane; counts, no text) wants `Authorization: Bearer <the replica's token>`."""

    OPEN_PATHS = frozenset({"/health", "/metrics"})

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        scheme, _, presented = dict(scope.get("headers") or []).get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), self.token):
            await self.app(scope, receive, send)
            return
        err = APIError(401, "this replica answers only the gateway", code="invalid_api_key")
        response = error_response(scope.get("path", "/"), err, headers={"www-authenticate": "Bearer"})
        await response(scope, receive, send)


async def _stop_when_engine_dies(app: FastAPI) -> None:
    """A replica whose engine loop died cannot serve again: stop the server (see `run`) so the
    process exits non-zero and whoever runs it starts a fresh one. The dead loop has already
    failed its requests, so the graceful stop only waits for their error responses."""
    state: ServerState = app.state.mp
    while (failure := state.engine_failure()) is None:
        await asyncio.sleep(0.2)
    log.error("the engine stopped (%s: %s); shutting the server down", type(failure).__name__, failure)
    stop = app.state.on_engine_death
    if stop is not None:
        stop()


def run(app: FastAPI, *, host: str, port: int, log_level: str) -> int:
    """Serve until stopped; the exit code: 0 after a normal stop, 1 when the engine died, 3 when
    the server could not start (as `uvicorn.run`)."""
    import uvicorn

    # proxy_headers off: the replica's peer is the gateway, whose X-Forwarded-For is not a caller's
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True
        asyncio.get_running_loop().call_later(_DEATH_DRAIN_S, setattr, server, "force_exit", True)

    app.state.on_engine_death = stop
    server.run()
    state: ServerState = app.state.mp
    if state.engine_failure() is not None:
        return 1
    return 0 if server.started else 3
