"""`modelport up` as an ASGI app: the v2 control API, the gateway and the control loop in one process.

Routes: /v2/* (admin token), /endpoints/{namespace}/{name}/* (each endpoint's stable URL),
/health, /docs and /openapi.json. The control loop runs as a task of this app's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from modelport import __version__
from modelport.control.api import control_router
from modelport.control.loop import ControlLoop, LoopSettings
from modelport.control.service import ControlError, EndpointService
from modelport.gateway.proxy import DEFAULT_HOLD_S, Gateway
from modelport.gateway.routing import RoutingTable
from modelport.protocol.errors import APIError
from modelport.protocol.http import BodyLimitMiddleware
from modelport.runtime.base import Runtime
from modelport.runtime.local import LocalRuntime
from modelport.store.repository import NotFound, Store, StoreBusy

log = logging.getLogger("modelport.control")

PROXY_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ControlConfig:
    database_url: str
    public_url: str  # base of every endpoint URL, e.g. http://127.0.0.1:8000
    admin_token_hash: bytes
    replica_log_dir: Path
    keep_replicas_on_exit: bool = False  # leave replicas running for the next start to re-adopt
    max_body_bytes: int = 8 * 1024 * 1024  # per request, API and endpoint traffic alike
    hold_s: float = (
        DEFAULT_HOLD_S  # how long a request waits for a starting endpoint (X-Scale-Up-Timeout overrides)
    )
    # endpoints (create payloads) made in namespace "default" at start-up unless they exist
    bootstrap: list[dict[str, Any]] = field(default_factory=list)
    loop: LoopSettings = field(default_factory=LoopSettings)


def create_control_app(config: ControlConfig, runtime: Runtime | None = None) -> FastAPI:
    store = Store.open(config.database_url)
    try:
        store.claim()
    except StoreBusy:
        store.close()
        raise
    runtime = runtime or LocalRuntime(config.replica_log_dir)
    table = RoutingTable()
    loop = ControlLoop(store, runtime, table, utc_now, config.loop)
    base = config.public_url.rstrip("/")
    service = EndpointService(store, lambda ns, name: f"{base}/endpoints/{ns}/{name}", loop.notify, utc_now)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=5.0), limits=httpx.Limits(max_connections=None)
    )

    async def wake_up(namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await asyncio.to_thread(service.wake, namespace, name)

    gateway = Gateway(table, config.admin_token_hash, client, wake_up, config.hold_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for body in config.bootstrap:
            with contextlib.suppress(ControlError):  # already there (or its name clashes): keep it
                await asyncio.to_thread(service.create, "default", body)
        task = asyncio.create_task(loop.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await loop.shutdown(stop_replicas=not config.keep_replicas_on_exit)
            await client.aclose()
            await runtime.close()
            store.close()

    app = FastAPI(
        title="modelport control plane",
        version=__version__,
        summary="Inference Endpoints v2 API, and a gateway in front of every endpoint",
        lifespan=lifespan,
    )
    app.include_router(control_router(service, runtime, config.admin_token_hash))

    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return JSONResponse({"error": exc.message, "error_type": exc.error_type or "bad_request"}, exc.status)

    @app.exception_handler(ControlError)
    async def control_error(request: Request, exc: ControlError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/health", tags=["system"], summary="The control plane is up")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.add_route(
        "/endpoints/{namespace}/{name}", gateway.handle, methods=PROXY_METHODS, include_in_schema=False
    )
    app.add_route(
        "/endpoints/{namespace}/{name}/{path:path}",
        gateway.handle,
        methods=PROXY_METHODS,
        include_in_schema=False,
    )
    return app
