"""The key routes over the ASGI transport: the wire (camelCase in and out, the secret in the create
and rotate answers only) and bad input answered in the API's own error shape."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.unit.control.api.control_app import ADMIN, api_error, run_api


def test_a_key_on_the_wire(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        body = {"name": "app", "endpoints": ["team/*"], "expiresIn": 3600,
                "limits": {"tokenBudget": 1000, "budgetPeriod": "day"}}  # fmt: skip
        made = await http.post("/v2/keys", json=body, headers=ADMIN)
        assert made.status_code == 201, made.text
        shown = made.json()
        assert shown["key"].startswith(f"mp_{shown['id']}_") and shown["prefix"] == f"mp_{shown['id']}"
        assert shown["limits"] == {"requestsPerMinute": None, "tokensPerMinute": None, "tokenBudget": 1000,
                                   "budgetPeriod": "day"}  # fmt: skip
        assert (shown["scopes"], shown["endpoints"], shown["status"]) == (["inference"], ["team/*"], "active")
        assert shown["expiresAt"] is not None and shown["revokedAt"] is None
        again = (await http.get(f"/v2/keys/{shown['id']}", headers=ADMIN)).json()
        assert "key" not in again and again == {k: v for k, v in shown.items() if k != "key"}
        listed = (await http.get("/v2/keys", headers=ADMIN)).json()["items"]
        assert [k["id"] for k in listed] == [shown["id"]] and "key" not in listed[0]
        revoked = (await http.delete(f"/v2/keys/{shown['id']}", headers=ADMIN)).json()
        assert revoked["status"] == "revoked" and revoked["revokedAt"] is not None
        usage = (await http.get(f"/v2/keys/{shown['id']}/usage", headers=ADMIN)).json()
        assert usage["keyId"] == shown["id"] and usage["requests"] == 0 and usage["byEndpoint"] == []
        assert usage["budget"]["period"] == "day" and usage["budget"]["limit"] == 1000

    run_api(tmp_path, scenario)


def test_rotation_on_the_wire(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        old = (await http.post("/v2/keys", json={"name": "app"}, headers=ADMIN)).json()
        rotated = await http.post(f"/v2/keys/{old['id']}/rotate", json={"overlapSeconds": 0}, headers=ADMIN)
        assert rotated.status_code == 201 and rotated.json()["key"] != old["key"]
        before = (await http.get(f"/v2/keys/{old['id']}", headers=ADMIN)).json()
        assert before["rotatedTo"] == rotated.json()["id"] and before["status"] == "expired"
        default = await http.post(f"/v2/keys/{rotated.json()['id']}/rotate", headers=ADMIN)  # no body
        assert default.status_code == 201, default.text

    run_api(tmp_path, scenario)


@pytest.mark.parametrize(
    ("content", "status", "error_type", "field"),
    [
        (b"{not json", 400, "bad_request", None),
        (b'"a string"', 422, "validation", None),
        (b"{}", 422, "validation", "name"),
        (b'{"name": 5}', 422, "validation", "name"),
        (b'{"name": ""}', 422, "validation", "name"),
        (b'{"name": "' + b"k" * 65 + b'"}', 422, "validation", "name"),
        (b'{"name": "k", "colour": "red"}', 422, "validation", "colour"),
        (b'{"name": "k", "scopes": ["root"]}', 422, "validation", "scopes.0"),
        (b'{"name": "k", "scopes": []}', 422, "validation", "scopes"),
        (b'{"name": "k", "endpoints": ["a/b/c"]}', 422, "validation", "endpoints"),
        (b'{"name": "k", "expiresIn": "soon"}', 422, "validation", "expiresIn"),
        (
            b'{"name": "k", "expiresIn": 60, "expiresAt": "2099-01-01T00:00:00Z"}',
            422,
            "validation",
            "expiresIn",
        ),
        (b'{"name": "k", "expiresAt": "2000-01-01T00:00:00Z"}', 422, "validation", "expiresAt"),
        (b'{"name": "k", "limits": {"tokenBudget": 0}}', 422, "validation", "limits.tokenBudget"),
        (b'{"name": "k", "limits": {"budgetPeriod": "week"}}', 422, "validation", "limits.budgetPeriod"),
        (b'{"name": "k", "limits": {"perSecond": 1}}', 422, "validation", "limits.perSecond"),
    ],
)
def test_a_bad_key_body_gets_the_apis_error(
    tmp_path: Path, content: bytes, status: int, error_type: str, field: str | None
) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        api_error(await http.post("/v2/keys", content=content, headers=ADMIN), status, error_type, field)
        assert (await http.get("/v2/keys", headers=ADMIN)).json() == {"items": []}

    run_api(tmp_path, scenario)


def test_bad_updates_rotations_and_unknown_keys(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        key = (await http.post("/v2/keys", json={"name": "app"}, headers=ADMIN)).json()
        path = f"/v2/keys/{key['id']}"
        api_error(await http.put(path, json={"scopes": "admin"}, headers=ADMIN), 422, "validation", "scopes")
        api_error(await http.put(path, json={"bogus": True}, headers=ADMIN), 422, "validation", "bogus")
        api_error(await http.put(path, content=b"{", headers=ADMIN), 400, "bad_request")
        long = await http.post(f"{path}/rotate", json={"overlapSeconds": 10**9}, headers=ADMIN)
        api_error(long, 422, "validation", "overlapSeconds")
        unknown = "/v2/keys/000000000000"
        calls = [("GET", unknown), ("PUT", unknown), ("DELETE", unknown), ("GET", f"{unknown}/usage")]
        for method, missing in calls:
            api_error(await http.request(method, missing, json={}, headers=ADMIN), 404, "not_found")
        assert (await http.get(path, headers=ADMIN)).json()["name"] == "app"  # unchanged by all of that

    run_api(tmp_path, scenario)
