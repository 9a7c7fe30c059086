"""The endpoint routes over the ASGI transport: who may call them, and bad input of every kind
(not JSON, the wrong shape, wrong types, unknown fields, over-long names, parameters out of
range, a body too large) answered in the API's own error shape, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.control.api.control_app import ADMIN, api_error, run_api


def model_folder(data: Path) -> str:
    folder = data / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    return str(folder)


@pytest.mark.parametrize(
    ("content", "status", "error_type", "field"),
    [
        (b"{not json", 400, "bad_request", None),
        (b"[" * 5000 + b"]" * 5000, 400, "bad_request", None),  # deeper than the parser goes
        (b'["a list"]', 422, "validation", None),
        (b'{"name": 5, "model": {"repository": "org/m"}}', 422, "validation", "name"),
        (b'{"name": "chat"}', 422, "validation", "model"),
        (b'{"name": "' + b"a" * 200 + b'", "model": {"repository": "org/m"}}', 422, "validation", "name"),
        (
            b'{"name": "chat", "model": {"repository": "org/m", "colour": 1}}',
            422,
            "validation",
            "model.colour",
        ),
        (
            b'{"name": "c", "model": {"repository": "org/m"}, "compute": {"scaling": {"maxReplica": "x"}}}',
            422,
            "validation",
            "compute.scaling.maxReplica",
        ),
    ],
)
def test_a_bad_create_body_gets_the_apis_error(
    tmp_path: Path, content: bytes, status: int, error_type: str, field: str | None
) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        reply = await http.post("/v2/endpoint/default", content=content, headers=ADMIN)
        api_error(reply, status, error_type, field)
        assert (await http.get("/v2/endpoint/default", headers=ADMIN)).json() == {"items": []}

    run_api(tmp_path, scenario)


def test_a_body_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        reply = await http.post("/v2/endpoint/default", content=b"x" * (65 * 1024), headers=ADMIN)
        assert "larger than" in api_error(reply, 413, "validation")

    run_api(tmp_path, scenario)


def test_bad_updates_and_unknown_endpoints(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        body = {"name": "chat", "model": {"repository": model_folder(tmp_path), "image": "oops"}}
        api_error(
            await http.post("/v2/endpoint/default", json=body, headers=ADMIN),
            422,
            "validation",
            "model.image",
        )
        api_error(await http.get("/v2/endpoint/default/nope", headers=ADMIN), 404, "not_found")
        api_error(await http.put("/v2/endpoint/default/nope", json={}, headers=ADMIN), 404, "not_found")
        api_error(await http.get("/v2/endpoint/Bad%20NS", headers=ADMIN), 422, "validation", "namespace")
        body["model"] = {"repository": body["model"]["repository"]}  # type: ignore[index]
        assert (await http.post("/v2/endpoint/default", json=body, headers=ADMIN)).status_code == 201
        put = await http.put("/v2/endpoint/default/chat", content=b"{oops", headers=ADMIN)
        api_error(put, 400, "bad_request")
        renamed = await http.put("/v2/endpoint/default/chat", json={"name": "other"}, headers=ADMIN)
        api_error(renamed, 422, "validation", "name")
        wrong = await http.put("/v2/endpoint/default/chat", json={"type": "secret"}, headers=ADMIN)
        api_error(wrong, 422, "validation", "type")

    run_api(tmp_path, scenario)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v2/endpoint/default/chat/logs?tail=abc", "tail"),
        ("/v2/endpoint/default/chat/logs?tail=0", "tail"),
        ("/v2/endpoint/default/chat/events?limit=100000", "limit"),
        ("/v2/endpoint/default/chat/metrics?step=soon", "step"),
        ("/v2/usage?by=colour", "by"),
    ],
)
def test_a_query_parameter_of_the_wrong_type_or_range_gets_the_apis_error(
    tmp_path: Path, path: str, field: str
) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        assert api_error(await http.get(path, headers=ADMIN), 422, "validation", field).startswith(
            f"{field}: "
        )

    run_api(tmp_path, scenario)


def test_times_that_do_not_parse_are_refused(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        api_error(await http.get("/v2/usage?from=yesterday", headers=ADMIN), 400, "bad_request", "from")
        no_zone = await http.get("/v2/usage?to=2026-01-01T00:00:00", headers=ADMIN)
        assert "time zone" in api_error(no_zone, 400, "bad_request", "to")

    run_api(tmp_path, scenario)


CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v2/endpoint/default", None),
    ("POST", "/v2/endpoint/default", {"name": "chat", "model": {"repository": "org/m"}}),
    ("DELETE", "/v2/endpoint/default/chat", None),
    ("GET", "/v2/keys", None),
    ("POST", "/v2/keys", {"name": "mine"}),
    ("GET", "/v2/usage", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(
    "authorization", [None, "Bearer mp_admin_wrong", "Basic YWRtaW46YWRtaW4=", "Bearer "]
)
def test_without_admin_credentials_every_route_answers_401(tmp_path: Path, authorization: str | None) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        headers = {"authorization": authorization} if authorization is not None else {}
        for method, path, body in CALLS:
            reply = await http.request(method, path, json=body, headers=headers)
            assert "admin" in api_error(reply, 401, "unauthorized"), (method, path)
        assert (await http.get("/v2/keys", headers=ADMIN)).json() == {"items": []}  # nothing was made

    run_api(tmp_path, scenario)


def test_a_key_without_the_admin_scope_is_no_admin_and_one_with_it_is(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        made = await http.post("/v2/keys", json={"name": "app"}, headers=ADMIN)
        inference = {"authorization": f"Bearer {made.json()['key']}"}
        for method, path, body in CALLS:
            reply = await http.request(method, path, json=body, headers=inference)
            api_error(reply, 401, "unauthorized")
        made = await http.post("/v2/keys", json={"name": "ops", "scopes": ["admin"]}, headers=ADMIN)
        ops = {"authorization": f"Bearer {made.json()['key']}"}
        assert (await http.get("/v2/endpoint/default", headers=ops)).status_code == 200
        # but it may not write what runs code on the host (that takes the `host` scope)
        image = {"custom": {"command": ["server", "{port}"]}}
        body = {"name": "chat", "model": {"repository": model_folder(tmp_path), "image": image}}
        refused = await http.post("/v2/endpoint/default", json=body, headers=ops)
        assert "host scope" in api_error(refused, 403, "forbidden", "model.image.custom.command")

    run_api(tmp_path, scenario, allow_custom_commands=True)
