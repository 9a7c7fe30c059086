"""The API-key resource: /v2/keys[/{id}[/rotate|/usage]] (admin token or an admin-scoped key;
an admin key acts only on keys within its own scopes and endpoints, control/services/key_service.py).

Each route parses its body (control/api/key_wire.py), runs one `KeyService` method in a worker
thread (store calls block) and shows what it returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from modelport.control.api.endpoint_routes import json_body, principal_of
from modelport.control.api.key_wire import (
    key_changes,
    render_issued,
    render_key,
    render_usage,
    rotate_overlap,
)
from modelport.control.services.key_service import KeyService


def keys_router(keys: KeyService, require_admin: Callable[[Request], None]) -> APIRouter:
    router = APIRouter(prefix="/v2/keys", dependencies=[Depends(require_admin)], tags=["keys"])

    @router.post("", status_code=201, summary="Create an API key (the secret is in this answer only)")
    async def create_key(request: Request) -> JSONResponse:
        asked = key_changes(await json_body(request))
        issued = await to_thread.run_sync(keys.create, asked, principal_of(request))
        return JSONResponse(render_issued(issued, keys.now()), status_code=201)

    @router.get("", summary="List API keys (never their secrets)")
    async def list_keys() -> dict[str, Any]:
        records = await to_thread.run_sync(keys.list)
        now = keys.now()
        return {"items": [render_key(record, now) for record in records]}

    @router.get("/{key_id}", summary="Get an API key")
    async def get_key(key_id: str) -> dict[str, Any]:
        return render_key(await to_thread.run_sync(keys.get, key_id), keys.now())

    @router.put("/{key_id}", summary="Update a key's name, scopes, endpoints, expiry or limits")
    async def update_key(key_id: str, request: Request) -> dict[str, Any]:
        asked = key_changes(await json_body(request))
        record = await to_thread.run_sync(keys.update, key_id, asked, principal_of(request))
        return render_key(record, keys.now())

    @router.delete("/{key_id}", summary="Revoke an API key (refused by the gateway at once)")
    async def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
        record = await to_thread.run_sync(keys.revoke, key_id, principal_of(request))
        return render_key(record, keys.now())

    @router.post(
        "/{key_id}/rotate", status_code=201, summary="Rotate: a new secret; the old one works for the overlap"
    )
    async def rotate_key(key_id: str, request: Request) -> JSONResponse:
        overlap = rotate_overlap(await json_body(request))
        issued = await to_thread.run_sync(keys.rotate, key_id, overlap, principal_of(request))
        return JSONResponse(render_issued(issued, keys.now()), status_code=201)

    @router.get("/{key_id}/usage", summary="Requests and tokens metered for a key")
    async def key_usage(key_id: str) -> dict[str, Any]:
        return render_usage(await to_thread.run_sync(keys.usage, key_id))

    return router
