"""The v2 REST resource: /v2/endpoint/{namespace}[/{name}[/pause|/resume|/scale-to-zero|/logs|/events]].

Thin: each route checks the admin token, runs one `EndpointService` method in a worker
thread (store calls block) and returns its JSON. Errors are `{"error", "error_type",
"field"?}` with the status the managed API uses, which huggingface_hub surfaces as-is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from modelport.auth.api_keys import Principal
from modelport.control.services.endpoint_service import EndpointService
from modelport.control.services.errors import ControlError
from modelport.placement.provider_hardware import local_hardware
from modelport.runtime.base import ReplicaHandle, Runtime

T = TypeVar("T")


def admin_check(admin_of: Callable[[str | None], Principal | None]) -> Callable[[Request], None]:
    """A route dependency: the admin token or an admin-scoped API key, else 401. The caller's
    principal is kept on the request for the routes whose answer depends on its scopes."""

    def require_admin(request: Request) -> None:
        principal = admin_of(request.headers.get("authorization"))
        if principal is None:
            raise ControlError(
                401,
                "unauthorized",
                "missing or invalid admin credentials: send Authorization: Bearer <admin token or admin key>",
            )
        request.state.principal = principal

    return require_admin


def principal_of(request: Request) -> Principal:
    """The admin principal `require_admin` found for this request."""
    principal: Principal = request.state.principal
    return principal


def control_router(
    service: EndpointService, runtime: Runtime, require_admin: Callable[[Request], None]
) -> APIRouter:
    router = APIRouter(prefix="/v2", dependencies=[Depends(require_admin)], tags=["endpoints"])

    async def call(fn: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(fn, *args)

    @router.get("/endpoint/{namespace}", summary="List endpoints")
    async def list_endpoints(namespace: str) -> dict[str, Any]:
        return await call(service.list, namespace)

    @router.post("/endpoint/{namespace}", status_code=201, summary="Create an endpoint")
    async def create_endpoint(namespace: str, request: Request) -> JSONResponse:
        body = await json_body(request)
        answer = await call(service.create, namespace, body, principal_of(request))
        return JSONResponse(answer, status_code=201)

    @router.get("/endpoint/{namespace}/{name}", summary="Get an endpoint")
    async def get_endpoint(namespace: str, name: str) -> dict[str, Any]:
        return await call(service.get, namespace, name)

    @router.put(
        "/endpoint/{namespace}/{name}", summary="Update an endpoint (partial; rolls out new revisions)"
    )
    async def update_endpoint(namespace: str, name: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        return await call(service.update, namespace, name, body, principal_of(request))

    @router.delete(
        "/endpoint/{namespace}/{name}", summary="Delete an endpoint (replicas stop in the background)"
    )
    async def delete_endpoint(namespace: str, name: str) -> dict[str, Any]:
        return await call(service.delete, namespace, name)

    @router.post("/endpoint/{namespace}/{name}/pause", summary="Pause: stop all replicas until resumed")
    async def pause_endpoint(namespace: str, name: str) -> dict[str, Any]:
        return await call(service.pause, namespace, name)

    @router.post("/endpoint/{namespace}/{name}/resume", summary="Resume a paused or scaled-to-zero endpoint")
    async def resume_endpoint(namespace: str, name: str) -> dict[str, Any]:
        return await call(service.resume, namespace, name)

    @router.post("/endpoint/{namespace}/{name}/scale-to-zero", summary="Scale to zero (a request wakes it)")
    async def scale_to_zero(namespace: str, name: str) -> dict[str, Any]:
        return await call(service.scale_to_zero, namespace, name)

    @router.get("/endpoint/{namespace}/{name}/logs", summary="Last log lines of each replica")
    async def endpoint_logs(
        namespace: str, name: str, tail: int = Query(200, ge=1, le=10000), replica: str | None = None
    ) -> dict[str, Any]:
        endpoint = await call(service.find, namespace, name)
        replicas = await call(service.store.list_replicas, endpoint.id)
        items = []
        for record in replicas:
            if replica and not record.id.startswith(replica):
                continue
            lines = await runtime.logs(ReplicaHandle.from_json(record.handle), tail) if record.handle else []
            items.append(
                {"id": record.id, "generation": record.generation, "phase": record.phase, "lines": lines}
            )
        return {"replicas": items}

    @router.get("/endpoint/{namespace}/{name}/events", summary="Scaling decisions, oldest first")
    async def endpoint_events(
        namespace: str, name: str, limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        return await call(service.events, namespace, name, limit)

    @router.get("/provider/{namespace}", summary="Hardware this installation can place replicas on")
    async def providers(namespace: str) -> dict[str, Any]:
        return {"items": await call(local_hardware)}

    return router


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise ControlError(400, "bad_request", "the request body is not valid JSON") from None
