"""The admin-audit middleware over the ASGI transport, around small routes that write through the
real key service: which calls it records, the request id it answers with, the answer held until
the record is committed, and a 503 in the API's shape (the change undone) when it cannot be."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from anyio import to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from modelport.auth.api_keys import ADMIN, KeyRing
from modelport.control.api.admin_audit import AdminAudit
from modelport.control.api.error_handlers import add_error_handlers
from modelport.control.services.audit_service import AuditService
from modelport.control.services.key_service import KeyChanges, KeyService
from modelport.ledger.audit_chain import StoredAudit
from modelport.store.audit import AuditStore
from modelport.store.repository import Store
from tests.unit.control.api.control_app import api_error
from tests.unit.control.conftest import Clock


class BrokenTrail(AuditStore):
    def append(self, entries: Any, conn: Any = None) -> list[StoredAudit]:
        raise RuntimeError("the disk is full")


def audited_app(store: Store, clock: Clock, trail: AuditStore | None = None) -> AdminAudit:
    keys = KeyService(store, KeyRing(b"\0" * 32), clock)
    api = FastAPI()
    add_error_handlers(api)

    @api.post("/v2/keys")
    async def create() -> JSONResponse:
        issued = await to_thread.run_sync(keys.create, KeyChanges(name="ci"), ADMIN)
        return JSONResponse({"id": issued.record.id, "key": issued.secret}, status_code=201)

    @api.post("/v2/keys/{key_id}/refused")
    async def refused(key_id: str) -> JSONResponse:
        await to_thread.run_sync(keys.revoke, key_id, ADMIN)  # written, then the call fails
        return JSONResponse({"error": "not today", "error_type": "bad_request"}, status_code=400)

    @api.get("/v2/keys")
    async def listed() -> dict[str, Any]:
        return {"items": [k.id for k in await to_thread.run_sync(keys.list)]}

    def key_state(key_id: str) -> dict[str, Any] | None:
        found = [k for k in store.keys.list() if k.id == key_id]
        return {"name": found[0].name, "revoked": found[0].revoked_at is not None} if found else None

    service = AuditService(trail or store.audit, lambda ns, name: None, key_state, clock)
    return AdminAudit(api, service, actor_of=lambda auth: "admin-token" if auth else "anonymous")


def call(app: AdminAudit, work: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await work(http)

    asyncio.run(main())


def test_a_change_is_answered_once_its_record_is_committed(store: Store, clock: Clock) -> None:
    async def work(http: httpx.AsyncClient) -> None:
        made = await http.post("/v2/keys", headers={"authorization": "Bearer x", "x-request-id": "req-42"})
        assert made.status_code == 201 and made.headers["x-request-id"] == "req-42"
        [record] = store.audit.records()
        target = f"key:{made.json()['id']}"
        assert (record.actor, record.action, record.target) == ("admin-token", "POST /v2/keys", target)
        assert (record.source, record.request_id) == ("198.51.100.4", "req-42")
        assert made.json()["key"] not in record.detail  # the secret in the answer is never recorded
        assert (await http.get("/v2/keys")).status_code == 200
        assert store.audit.count() == 1  # a read is not recorded
        anonymous = await http.post("/v2/keys")
        assert len(anonymous.headers["x-request-id"]) == 32  # one is made when the caller sends none

    call(audited_app(store, clock), work)
    assert [r.actor for r in store.audit.records()] == ["admin-token", "anonymous"]


def test_a_refused_call_is_recorded_and_its_writes_undone(store: Store, clock: Clock) -> None:
    key = KeyService(store, KeyRing(b"\0" * 32), clock).create(KeyChanges(name="kept"), ADMIN).record

    async def work(http: httpx.AsyncClient) -> None:
        api_error(await http.post(f"/v2/keys/{key.id}/refused"), 400, "bad_request")

    call(audited_app(store, clock), work)
    assert store.keys.get(key.id).revoked_at is None
    [record] = store.audit.records()
    assert record.target == f"key:{key.id}" and '"error":"not today"' in record.detail
    assert '"changes":{}' in record.detail


def test_without_its_record_a_change_is_undone_and_answered_503(store: Store, clock: Clock) -> None:
    key = KeyService(store, KeyRing(b"\0" * 32), clock).create(KeyChanges(name="kept"), ADMIN).record

    async def work(http: httpx.AsyncClient) -> None:
        made = await http.post("/v2/keys")
        assert "audit record" in api_error(made, 503, "unavailable") and made.headers["x-request-id"]
        # a refusal stays a refusal (there was no change to undo)
        api_error(await http.post(f"/v2/keys/{key.id}/refused"), 400, "bad_request")

    call(audited_app(store, clock, BrokenTrail(store.engine)), work)
    assert store.keys.list() == [key] and store.audit.count() == 0
