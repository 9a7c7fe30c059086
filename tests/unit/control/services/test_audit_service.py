"""The audit service on a real store, driven as the admin-audit middleware drives it: the record
an admin call makes (who, route, target, diff, outcome), committed with the call's own writes or
not at all; a refused call's writes are undone and the refusal recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelport.auth.api_keys import ADMIN, KeyRing
from modelport.control.services.audit_service import AdminCall, AuditService, CallOutcome, template
from modelport.control.services.endpoint_service import EndpointService
from modelport.control.services.errors import ControlError
from modelport.control.services.key_service import KeyChanges, KeyService
from modelport.ledger.audit_chain import AuditEntry, StoredAudit
from modelport.store import session
from modelport.store.audit import AuditStore
from modelport.store.repository import Store
from tests.unit.control.conftest import Clock


class Services:
    def __init__(self, store: Store, clock: Clock, model: Path) -> None:
        self.store = store
        self.endpoints = EndpointService(
            store, lambda ns, n: f"http://cp/{ns}/{n}", lambda: None, clock, True
        )
        self.keys = KeyService(store, KeyRing(b"\0" * 32), clock)
        self.model = model
        self.clock = clock

    def endpoint_state(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.endpoints.get(namespace, name)
        except ControlError:
            return None

    def key_state(self, key_id: str) -> dict[str, Any] | None:
        try:
            key = self.keys.get(key_id)
        except ControlError:
            return None
        return {"name": key.name, "scopes": key.scopes, "revoked": key.revoked_at is not None}

    def audit(self, audit: AuditStore | None = None) -> AuditService:
        return AuditService(audit or self.store.audit, self.endpoint_state, self.key_state, self.clock)

    def body(self) -> dict[str, Any]:
        image = {"custom": {"command": ["server", "{port}"], "healthRoute": "/health"}}
        return {"name": "chat", "model": {"repository": str(self.model), "image": image}}


@pytest.fixture
def services(store: Store, clock: Clock, tmp_path: Path) -> Services:
    (tmp_path / "config.json").write_text("{}")
    return Services(store, clock, tmp_path)


def outcome(status: int, answer: dict[str, Any] | None = None) -> CallOutcome:
    return CallOutcome(status, answer, actor="admin-token", source="10.0.0.7", request_id="req-1")


def audited(audit: AuditService, method: str, path: str, work: Any, status: int = 200) -> AuditEntry:
    """One admin call as the middleware runs it: its transaction, the state before, the call, the record."""
    conn = audit.connect()
    try:
        with session.shared(conn) as transaction:
            call = audit.started(method, path)
            answer = work()
            return audit.record(call, outcome(status, answer), transaction)
    finally:
        conn.close()


def records(store: Store) -> list[StoredAudit]:
    return list(store.audit.records())


def test_an_update_is_recorded_with_its_diff_and_committed_with_it(services: Services, store: Store) -> None:
    services.endpoints.create("default", services.body(), ADMIN)
    patch = {"compute": {"scaling": {"maxReplica": 3}}}
    entry = audited(
        services.audit(),
        "PUT",
        "/v2/endpoint/default/chat",
        lambda: services.endpoints.update("default", "chat", patch, ADMIN),
    )
    assert (entry.kind, entry.actor, entry.target) == ("admin", "admin-token", "default/chat")
    assert entry.action == "PUT /v2/endpoint/{namespace}/{name}"
    assert (entry.source, entry.request_id) == ("10.0.0.7", "req-1")
    assert entry.detail["status"] == 200
    assert entry.detail["changes"]["compute.scaling.maxReplica"] == {"before": 1, "after": 3}
    assert store.get_endpoint("default", "chat").max_replica == 3
    [stored] = records(store)
    assert stored.target == "default/chat" and store.audit.verify().ok


def test_a_create_is_recorded_under_the_name_its_answer_gives(services: Services) -> None:
    entry = audited(
        services.audit(),
        "POST",
        "/v2/endpoint/default",
        lambda: services.endpoints.create("default", services.body(), ADMIN),
        status=201,
    )
    assert (entry.target, entry.action) == ("default/chat", "POST /v2/endpoint/{namespace}")
    assert entry.detail["changes"]["name"] == {"before": None, "after": "chat"}


def test_a_new_keys_record_names_it_and_never_holds_its_secret(services: Services) -> None:
    issued: list[str] = []

    def create() -> dict[str, Any]:
        made = services.keys.create(KeyChanges(name="ci"), ADMIN)
        issued.append(made.secret)
        return {"id": made.record.id, "key": made.secret}  # the answer carries the secret

    entry = audited(services.audit(), "POST", "/v2/keys", create, status=201)
    [secret] = issued
    assert entry.target.startswith("key:") and entry.action == "POST /v2/keys"
    assert entry.detail["changes"]["name"] == {"before": None, "after": "ci"}
    assert secret not in repr(entry)


def test_a_refused_calls_writes_are_undone_and_the_refusal_recorded(services: Services, store: Store) -> None:
    services.endpoints.create("default", services.body(), ADMIN)
    endpoint = store.get_endpoint("default", "chat")

    def half_done() -> dict[str, Any]:
        store.update_endpoint(endpoint.id, services.clock(), max_replica=5)  # written, then refused
        return {"error": "no: " + "x" * 600, "error_type": "validation"}

    entry = audited(services.audit(), "PUT", "/v2/endpoint/default/chat", half_done, status=422)
    assert entry.detail["status"] == 422 and entry.detail["changes"] == {}
    assert entry.detail["error"].startswith("no: ") and len(entry.detail["error"]) == 500
    assert store.get_endpoint("default", "chat").max_replica == 1
    assert [r.target for r in records(store)] == ["default/chat"]


def test_without_its_record_the_change_is_not_made(services: Services, store: Store) -> None:
    class BrokenTrail(AuditStore):
        def append(self, entries: Any, conn: Any = None) -> list[StoredAudit]:
            raise RuntimeError("the disk is full")

    services.endpoints.create("default", services.body(), ADMIN)
    patch = {"compute": {"scaling": {"maxReplica": 2}}}
    with pytest.raises(RuntimeError, match="disk is full"):
        audited(
            services.audit(BrokenTrail(store.engine)),
            "PUT",
            "/v2/endpoint/default/chat",
            lambda: services.endpoints.update("default", "chat", patch, ADMIN),
        )
    assert store.get_endpoint("default", "chat").max_replica == 1
    assert records(store) == []


def test_writes_made_in_a_worker_thread_join_the_calls_transaction(services: Services, store: Store) -> None:
    """The API runs a service in a worker thread: the shared transaction goes with it."""
    services.endpoints.create("default", services.body(), ADMIN)
    audit = services.audit()
    patch = {"compute": {"scaling": {"maxReplica": 4}}}

    async def call() -> None:
        conn = await asyncio.to_thread(audit.connect)
        try:
            with session.shared(conn) as transaction:
                started: AdminCall = await asyncio.to_thread(
                    audit.started, "PUT", "/v2/endpoint/default/chat"
                )
                await asyncio.to_thread(services.endpoints.update, "default", "chat", patch, ADMIN)
                await asyncio.to_thread(audit.record, started, outcome(409, {"error": "lost"}), transaction)
        finally:
            await asyncio.to_thread(conn.close)

    asyncio.run(call())
    assert store.get_endpoint("default", "chat").max_replica == 1  # undone with the refusal
    assert [r.target for r in records(store)] == ["default/chat"]


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v2/endpoint/team", "/v2/endpoint/{namespace}"),
        ("/v2/endpoint/team/chat", "/v2/endpoint/{namespace}/{name}"),
        ("/v2/endpoint/team/chat/pause", "/v2/endpoint/{namespace}/{name}/pause"),
        ("/v2/keys", "/v2/keys"),
        ("/v2/keys/abc/rotate", "/v2/keys/{id}/rotate"),
        ("/v2/other", "/v2/other"),
    ],
)
def test_the_action_names_the_route_not_its_values(path: str, route: str) -> None:
    assert template(path) == route
