"""`modelport up` as an ASGI app: the v2 control API, the gateway and the control loop in one process.

Routes: /v2/* (admin token), /endpoints/{namespace}/{name}/* (each endpoint's stable URL),
/health, /docs and /openapi.json. The control loop runs as a task of this app's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport import envs
from modelport.auth.api_keys import ADMIN, AuthError, KeyRing, Principal
from modelport.control.api.admin_audit import AdminAudit
from modelport.control.api.endpoint_routes import admin_check, control_router
from modelport.control.api.error_handlers import add_error_handlers
from modelport.control.api.key_routes import keys_router
from modelport.control.api.key_wire import render_key
from modelport.control.api.usage_routes import usage_router
from modelport.control.metrics import ControlCollector
from modelport.control.reconcile.autoscaler import Autoscaler, AutoscalerSettings
from modelport.control.reconcile.key_sync import sync_keys
from modelport.control.reconcile.loop import ControlLoop, LoopSettings
from modelport.control.services.audit_service import AuditService
from modelport.control.services.endpoint_service import EndpointService
from modelport.control.services.errors import ControlError
from modelport.control.services.key_service import KeyService
from modelport.gateway.access import DEFAULT_PRIVATE_NETWORKS, forwarded_client, parse_networks
from modelport.gateway.limits import PERIODS, period_start
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.payloads import BodyLimits
from modelport.gateway.proxy import DEFAULT_HOLD_S, Gateway, GatewaySettings
from modelport.gateway.routing import IPNetwork, RoutingTable
from modelport.gateway.upstream import Upstream
from modelport.observe.retention import run_retention
from modelport.observe.usage_log import UsageLog
from modelport.protocol.http import BodyLimitMiddleware
from modelport.runtime.base import Runtime
from modelport.runtime.local import LocalRuntime
from modelport.store.repository import NotFound, Store, StoreBusy
from modelport.version import __version__

log = logging.getLogger("modelport.control")


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
    keepalive_s: float = 5.0  # SSE keep-alive interval for streams held while an endpoint starts
    # networks `private` endpoints accept callers from unless an endpoint lists its own
    private_networks: list[str] = field(default_factory=lambda: list(DEFAULT_PRIVATE_NETWORKS))
    # proxies whose X-Forwarded-For names the caller (CIDRs); none: the TCP peer is the caller
    trusted_proxies: list[str] = field(default_factory=list)
    allow_custom_commands: bool = False  # endpoints with image.custom.command (run on this host)
    # endpoints (create payloads) made in namespace "default" at start-up unless they exist
    bootstrap: list[dict[str, Any]] = field(default_factory=list)
    loop: LoopSettings = field(default_factory=LoopSettings)
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)


def create_control_app(config: ControlConfig, runtime: Runtime | None = None) -> ControlPlaneApp:
    store = Store.open(config.database_url)
    try:
        store.claim()
    except StoreBusy:
        store.close()
        raise
    runtime = runtime or LocalRuntime(config.replica_log_dir, preload=envs.replica_preload())
    table = RoutingTable()
    metrics = GatewayMetrics()
    # the switch holds at every launch too, not only at the create (an endpoint made before a restart)
    loop_settings = replace(config.loop, allow_custom_commands=config.allow_custom_commands)
    loop = ControlLoop(store, runtime, table, utc_now, loop_settings, metrics)
    base = config.public_url.rstrip("/")
    service = EndpointService(
        store,
        lambda ns, name: f"{base}/endpoints/{ns}/{name}",
        loop.notify,
        utc_now,
        allow_custom_commands=config.allow_custom_commands,
    )
    client = Upstream(
        first_byte_s=envs.positive_float(envs.UPSTREAM_FIRST_BYTE_TIMEOUT),
        idle_s=envs.positive_float(envs.UPSTREAM_IDLE_TIMEOUT),
    )
    ring = KeyRing(config.admin_token_hash)
    ring.replace(store.keys.list())
    keys = KeyService(store, ring, utc_now)
    usage_log = UsageLog(store.usage, audit=store.audit, texts=store.texts)

    def admin_of(authorization: str | None) -> Principal | None:
        try:
            principal = ring.authenticate(authorization, utc_now())
        except AuthError:
            return None
        return principal if principal.is_admin else None

    async def wake_up(namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await asyncio.to_thread(service.wake, namespace, name)

    settings = GatewaySettings(
        config.hold_s,
        config.keepalive_s,
        parse_networks(config.private_networks),
        max_held=int(envs.positive_float(envs.MAX_HELD)),
        body_limits=BodyLimits.from_env(config.max_body_bytes),
    )
    gateway = Gateway(
        table, ring, client, wake_up, usage_log, metrics, settings, lambda _replica: loop.notify()
    )
    _seed_budgets(gateway, store)
    store.event_listeners.append(
        lambda endpoint, event: gateway.metrics.scale_events.labels(
            endpoint.namespace, endpoint.name, event.cause
        ).inc()
    )
    autoscaler = Autoscaler(
        store,
        table,
        gateway.admissions,
        loop.notify,
        utc_now,
        metrics=gateway.metrics,
        settings=config.autoscaler,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for body in config.bootstrap:
            with contextlib.suppress(ControlError):  # already there (or its name clashes): keep it
                await asyncio.to_thread(service.create, "default", body, ADMIN)
        await runtime.prepare()
        task = asyncio.create_task(loop.run())
        key_sync = asyncio.create_task(sync_keys(store, ring))
        scaling = asyncio.create_task(autoscaler.run())
        usage_log.start()
        retention = asyncio.create_task(run_retention(store, utc_now))
        try:
            yield
        finally:
            for background in (scaling, task, key_sync, retention):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await loop.shutdown(stop_replicas=not config.keep_replicas_on_exit)
            await usage_log.close()
            await client.close()
            await runtime.close()
            await asyncio.to_thread(store.close)  # closes the pool's connections (and PostgreSQL's lock)

    app = FastAPI(
        title="modelport control plane",
        version=__version__,
        summary="Inference Endpoints v2 API, and a gateway in front of every endpoint",
        lifespan=lifespan,
    )
    require_admin = admin_check(admin_of)
    app.include_router(control_router(service, runtime, require_admin))
    app.include_router(keys_router(keys, require_admin))
    app.include_router(usage_router(store, utc_now, require_admin))

    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)

    def actor_of(authorization: str | None) -> str:
        try:
            return ring.authenticate(authorization, utc_now()).key_id or "admin-token"
        except AuthError:
            return "anonymous"

    audit = AuditService(
        store.audit,
        endpoint_state=lambda ns, name: _quietly(lambda: service.get(ns, name)),
        key_state=lambda key_id: _quietly(lambda: render_key(keys.get(key_id), utc_now())),
        now=utc_now,
    )
    app.add_middleware(AdminAudit, audit=audit, actor_of=actor_of)

    add_error_handlers(app)

    @app.get("/health", tags=["system"], summary="The control plane is up")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    pages = autoscaler.scraper.pages if autoscaler.scraper is not None else {}
    metrics.registry.register(ControlCollector(store, table, lambda: pages, usage_log))

    @app.get("/metrics", tags=["system"], summary="Gateway, control plane and engine metrics (admin)")
    async def metrics_page(request: Request) -> Response:
        require_admin(request)
        page = await asyncio.to_thread(generate_latest, metrics.registry)  # reads the store
        return Response(page, media_type=CONTENT_TYPE_LATEST)

    # the gateway limits its own bodies, per content type (gateway/payloads.py)
    return ControlPlaneApp(app, gateway.asgi, parse_networks(config.trusted_proxies))


class ControlPlaneApp:
    """The ASGI entry point: endpoint traffic (/endpoints/...) goes straight to the gateway, past
    the API's routing and middleware, which would otherwise wrap every streamed chunk; the rest
    (and the lifespan) is the FastAPI app. Behind trusted proxies, the caller's address both see
    (scope["client"]) is the one X-Forwarded-For names (gateway/access.py `forwarded_client`)."""

    def __init__(self, api: FastAPI, gateway: ASGIApp, trusted_proxies: tuple[IPNetwork, ...] = ()) -> None:
        self.api = api
        self.gateway = gateway
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted_proxies and scope["type"] in ("http", "websocket") and scope.get("client"):
            scope = _forwarded(scope, self.trusted_proxies)
        if scope["type"] == "http" and scope["path"].startswith("/endpoints/"):
            await self.gateway(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def _forwarded(scope: Scope, trusted: tuple[IPNetwork, ...]) -> Scope:
    host = scope["client"][0]
    values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"x-forwarded-for"]
    client = forwarded_client(host, values, trusted)
    if client == host:
        return scope
    return {**scope, "client": (client, 0) if client is not None else None}


def _quietly(read: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """A resource's current state for the audit trail (as the API shows it), or None where there is none."""
    try:
        return read()
    except (ControlError, NotFound):
        return None


def _seed_budgets(gateway: Gateway, store: Store) -> None:
    """Budgets continue from the usage stored this period, so a restart does not reset them."""
    now = utc_now()
    budgeted = [k for k in store.keys.list() if k.token_budget is not None]
    for period in PERIODS:
        ids = {k.id for k in budgeted if k.budget_period == period}
        if ids:
            used = store.usage.tokens_since(period_start(period, now))
            gateway.limiter.seed_budgets({k: used.get(k, 0) for k in ids}, period, now)
