"""The endpoint service on a real store: what a create, update, pause, resume, scale-to-zero, wake
and delete write, what each refuses and with which status, and that the loop is woken only once
a change is committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelport.auth.api_keys import ADMIN, Principal
from modelport.control.services.endpoint_service import EndpointService
from modelport.control.services.errors import ControlError
from modelport.store.repository import Store
from tests.unit.control.conftest import Clock

KEY = Principal(key_id="000000000001", scopes=frozenset({"admin", "inference"}), endpoints=("*",))


class Woken:
    def __init__(self) -> None:
        self.times = 0

    def __call__(self) -> None:
        self.times += 1


@pytest.fixture
def woken() -> Woken:
    return Woken()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def make(store: Store, clock: Clock, woken: Woken, allow_custom: bool = True) -> EndpointService:
    return EndpointService(
        store, lambda ns, name: f"http://cp/endpoints/{ns}/{name}", woken, clock, allow_custom
    )


@pytest.fixture
def service(store: Store, clock: Clock, woken: Woken) -> EndpointService:
    return make(store, clock, woken)


def body(model: Path, name: str = "chat", **extra: Any) -> dict[str, Any]:
    image = {"custom": {"command": ["server", "--port", "{port}"], "healthRoute": "/health"}}
    return {"name": name, "model": {"repository": str(model), "image": image}, **extra}


def test_a_create_stores_the_endpoint_and_wakes_the_loop(
    service: EndpointService, store: Store, model: Path, woken: Woken
) -> None:
    shown = service.create("default", body(model), ADMIN)
    assert shown["name"] == "chat" and shown["status"]["state"] == "pending"
    assert shown["status"]["url"] == "http://cp/endpoints/default/chat" and shown["status"]["generation"] == 1
    assert woken.times == 1
    stored = store.get_endpoint("default", "chat")
    assert (stored.intent, stored.min_replica) == ("active", 1)
    assert store.get_revision(stored.id, 1).image_kind == "custom"
    assert service.get("default", "chat") == shown
    assert [e["name"] for e in service.list("default")["items"]] == ["chat"]
    assert service.list("other")["items"] == []


@pytest.mark.parametrize(
    ("namespace", "payload", "status", "field"),
    [
        ("default", "not an object", 422, None),
        ("default", {"name": "Bad Name!"}, 422, "name"),
        ("-bad", {"name": "chat"}, 422, "namespace"),
        ("default", {"name": "chat", "model": {"repository": "/nowhere"}}, 422, "model.repository"),
    ],
)
def test_a_create_refuses_what_it_cannot_store(
    service: EndpointService, store: Store, namespace: str, payload: Any, status: int, field: str | None
) -> None:
    with pytest.raises(ControlError) as refused:
        service.create(namespace, payload, ADMIN)
    assert (refused.value.status, refused.value.error_type) == (status, "validation")
    if field is not None:
        assert refused.value.field == field
    assert store.list_endpoints() == []


def test_names_are_unique_in_a_namespace(service: EndpointService, model: Path) -> None:
    service.create("default", body(model), ADMIN)
    with pytest.raises(ControlError) as clash:
        service.create("default", body(model), ADMIN)
    assert (clash.value.status, clash.value.error_type, clash.value.field) == (409, "conflict", "name")
    assert service.create("team", body(model), ADMIN)["name"] == "chat"


def test_a_command_run_on_the_host_needs_the_host_scope_and_the_installations_switch(
    store: Store, clock: Clock, woken: Woken, model: Path
) -> None:
    with pytest.raises(ControlError) as no_scope:
        make(store, clock, woken).create("default", body(model), KEY)
    assert (no_scope.value.status, no_scope.value.error_type) == (403, "forbidden")
    with pytest.raises(ControlError) as switched_off:
        make(store, clock, woken, allow_custom=False).create("default", body(model), ADMIN)
    assert switched_off.value.status == 403 and "--allow-custom-commands" in switched_off.value.message
    assert store.list_endpoints() == [] and woken.times == 0


def test_another_region_is_refused(service: EndpointService, model: Path) -> None:
    with pytest.raises(ControlError) as refused:
        service.create("default", body(model, provider={"region": "mars-north-1"}), ADMIN)
    assert (refused.value.status, refused.value.error_type, refused.value.field) == (
        422,
        "placement",
        "provider.region",
    )


def test_an_update_adds_a_revision_only_for_what_replicas_run(
    service: EndpointService, store: Store, model: Path, clock: Clock
) -> None:
    service.create("default", body(model), ADMIN)
    clock.advance(1)
    scaled = service.update("default", "chat", {"compute": {"scaling": {"maxReplica": 3}}}, ADMIN)
    assert scaled["compute"]["scaling"]["maxReplica"] == 3 and scaled["status"]["generation"] == 1
    clock.advance(1)
    moved = service.update("default", "chat", {"model": {"env": {"COLOUR": "blue"}}}, ADMIN)
    assert moved["status"]["generation"] == 2
    endpoint = store.get_endpoint("default", "chat")
    assert store.get_revision(endpoint.id, 2).env == {"COLOUR": "blue"}
    with pytest.raises(ControlError) as rename:
        service.update("default", "chat", {"name": "other"}, ADMIN)
    assert (rename.value.status, rename.value.field) == (422, "name")
    with pytest.raises(ControlError) as missing:
        service.update("default", "nope", {}, ADMIN)
    assert missing.value.status == 404


def test_an_update_that_fails_half_way_leaves_nothing_and_wakes_nothing(
    service: EndpointService, store: Store, model: Path, woken: Woken
) -> None:
    service.create("default", body(model), ADMIN)
    woken.times = 0
    with pytest.raises(RuntimeError), store.transaction():  # as the audit middleware holds it
        service.update("default", "chat", {"model": {"env": {"COLOUR": "red"}}}, ADMIN)
        raise RuntimeError("the audit record could not be written")
    assert store.get_endpoint("default", "chat").generation == 1 and woken.times == 0


def test_pause_resume_scale_to_zero_and_wake_are_intents_with_their_events(
    service: EndpointService, store: Store, model: Path
) -> None:
    service.create("default", body(model), ADMIN)
    with pytest.raises(ControlError) as running:
        service.resume("default", "chat")
    assert running.value.status == 400
    assert service.pause("default", "chat")["status"]["state"] == "paused"
    with pytest.raises(ControlError) as paused:
        service.scale_to_zero("default", "chat")
    assert paused.value.status == 400
    service.resume("default", "chat")
    assert service.scale_to_zero("default", "chat")["status"]["state"] == "scaledToZero"
    service.wake("default", "chat")
    assert store.get_endpoint("default", "chat").intent == "active"
    service.wake("default", "chat")  # not at zero: nothing to do
    events = service.events("default", "chat", 10)["items"]
    assert [(e["from"], e["to"], e["cause"]) for e in events] == [
        (1, 0, "user"),
        (0, 1, "user"),
        (1, 0, "user"),
        (0, 1, "request"),
    ]
    assert events[-1]["reason"] == "a request arrived at zero replicas"


def test_a_deleted_endpoint_is_gone_from_the_api_at_once(
    service: EndpointService, store: Store, model: Path
) -> None:
    service.create("default", body(model), ADMIN)
    service.delete("default", "chat")
    assert store.get_endpoint("default", "chat").intent == "deleting"  # the loop removes it
    with pytest.raises(ControlError) as gone:
        service.get("default", "chat")
    assert gone.value.status == 404
    assert service.list("default")["items"] == []
