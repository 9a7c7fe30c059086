"""API keys in the SDK: exact wire calls of Client / AsyncClient over a mock transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import modelport
from modelport.sdk import ApiKey, AsyncClient, Client
from modelport.sdk.errors import NotFound, ValidationError

KEY_ID = "0123456789ab"
SECRET = f"mp_{KEY_ID}_s3cr3t"


def wire_key(**overrides: Any) -> dict[str, Any]:
    key = {
        "id": KEY_ID, "name": "ci", "prefix": f"mp_{KEY_ID}", "scopes": ["inference"], "endpoints": ["*"],
        "limits": {"requestsPerMinute": None, "tokensPerMinute": None, "tokenBudget": None,
                   "budgetPeriod": "month"},
        "createdAt": "2026-11-22T12:00:00+00:00", "expiresAt": None, "revokedAt": None, "rotatedTo": None,
        "status": "active",
    }  # fmt: skip
    key.update(overrides)
    return key


USAGE = {
    "keyId": KEY_ID, "requests": 3, "promptTokens": 30, "completionTokens": 12,
    "byEndpoint": [{"namespace": "default", "name": "demo", "requests": 3, "promptTokens": 30,
                    "completionTokens": 12}],
    "budget": {"period": "day", "periodStart": "2026-11-22T00:00:00+00:00", "used": 42, "limit": 1000},
}  # fmt: skip


class Api:
    """Answers each expected (method, raw path, JSON body) in order with a canned reply."""

    def __init__(self, *script: tuple[str, str, Any, int, Any]) -> None:
        self.script = list(script)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        method, path, body, status, reply = self.script.pop(0)
        assert (request.method, request.url.raw_path.decode()) == (method, path)
        assert (json.loads(request.content) if request.content else None) == body
        return httpx.Response(status, json=reply)

    def client(self) -> Client:
        return Client("http://cp", token="t0k", transport=httpx.MockTransport(self))

    def done(self) -> None:
        assert not self.script, f"calls not made: {self.script}"


def test_create_sends_every_option_and_returns_the_secret_once() -> None:
    created = wire_key(
        name="team-ci", scopes=["inference", "admin"], endpoints=["default/demo", "team/*"],
        limits={"requestsPerMinute": 60, "tokensPerMinute": 1000, "tokenBudget": 5000, "budgetPeriod": "day"},
        expiresAt="2026-12-22T12:00:00+00:00", key=SECRET,
    )  # fmt: skip
    body = {
        "name": "team-ci",
        "scopes": ["inference", "admin"],
        "endpoints": ["default/demo", "team/*"],
        "expiresIn": 30 * 86400,
        "limits": {
            "requestsPerMinute": 60,
            "tokensPerMinute": 1000,
            "tokenBudget": 5000,
            "budgetPeriod": "day",
        },
    }
    api = Api(("POST", "/v2/keys", body, 201, created))
    key = api.client().create_key(
        "team-ci",
        scopes=["inference", "admin"],
        endpoints=["default/demo", "team/*"],
        expires_in=30 * 86400,
        requests_per_minute=60,
        tokens_per_minute=1000,
        token_budget=5000,
        budget_period="day",
    )
    api.done()
    assert api.seen[0].headers["authorization"] == "Bearer t0k"
    assert key == ApiKey(
        id=KEY_ID,
        name="team-ci",
        prefix=f"mp_{KEY_ID}",
        scopes=["inference", "admin"],
        endpoints=["default/demo", "team/*"],
        limits={"requestsPerMinute": 60, "tokensPerMinute": 1000, "tokenBudget": 5000, "budgetPeriod": "day"},
        status="active",
        created_at="2026-11-22T12:00:00+00:00",
        expires_at="2026-12-22T12:00:00+00:00",
        revoked_at=None,
        rotated_to=None,
        secret=SECRET,
    )
    assert key.raw == created
    assert SECRET not in repr(key)  # the secret stays out of logs and tracebacks


def test_create_with_defaults_sends_only_the_name() -> None:
    api = Api(("POST", "/v2/keys", {"name": "ci"}, 201, wire_key(key=SECRET)))
    key = api.client().create_key("ci")
    api.done()
    assert key.secret == SECRET and key.expires_at is None


def test_create_with_a_datetime_expiry_sends_iso() -> None:
    at = datetime(2027, 1, 1, tzinfo=UTC)
    body = {"name": "ci", "expiresAt": "2027-01-01T00:00:00+00:00"}
    api = Api(("POST", "/v2/keys", body, 201, wire_key(expiresAt=body["expiresAt"], key=SECRET)))
    assert api.client().create_key("ci", expires_at=at).expires_at == body["expiresAt"]
    api.done()


def test_list_get_revoke_and_usage() -> None:
    revoked = wire_key(revokedAt="2026-11-22T13:00:00+00:00", status="revoked")
    api = Api(
        ("GET", "/v2/keys", None, 200, {"items": [wire_key(), wire_key(id="ba9876543210", name="other")]}),
        ("GET", f"/v2/keys/{KEY_ID}", None, 200, wire_key()),
        ("DELETE", f"/v2/keys/{KEY_ID}", None, 200, revoked),
        ("GET", f"/v2/keys/{KEY_ID}/usage", None, 200, USAGE),
    )
    client = api.client()
    assert [k.name for k in client.list_keys()] == ["ci", "other"]
    key = client.get_key(KEY_ID)
    assert key.secret is None and key.status == "active"
    gone = client.revoke_key(KEY_ID)
    assert gone.status == "revoked" and gone.revoked_at == "2026-11-22T13:00:00+00:00"
    assert client.key_usage(KEY_ID) == USAGE
    api.done()


def test_update_sends_only_what_is_given_and_none_clears() -> None:
    api = Api(
        ("PUT", f"/v2/keys/{KEY_ID}", {"name": "renamed", "limits": {"tokenBudget": 10}}, 200, wire_key()),
        (
            "PUT",
            f"/v2/keys/{KEY_ID}",
            {"expiresAt": None, "limits": {"requestsPerMinute": None, "budgetPeriod": "hour"}},
            200,
            wire_key(),
        ),
        ("PUT", f"/v2/keys/{KEY_ID}", {"scopes": ["admin"], "expiresIn": 60}, 200, wire_key()),
    )
    client = api.client()
    client.update_key(KEY_ID, name="renamed", token_budget=10)
    client.update_key(KEY_ID, expires_at=None, requests_per_minute=None, budget_period="hour")
    client.update_key(KEY_ID, scopes=["admin"], expires_in=60)
    api.done()


def test_update_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="rpm"):
        Api().client().update_key(KEY_ID, rpm=5)  # type: ignore[call-arg]


def test_rotate_sends_the_overlap_and_returns_the_new_secret() -> None:
    fresh = wire_key(id="ffffffffffff", prefix="mp_ffffffffffff", key="mp_ffffffffffff_new")
    api = Api(
        ("POST", f"/v2/keys/{KEY_ID}/rotate", {"overlapSeconds": 3600}, 201, fresh),
        ("POST", f"/v2/keys/{KEY_ID}/rotate", {"overlapSeconds": 0}, 201, fresh),
    )
    client = api.client()
    new = client.rotate_key(KEY_ID)
    assert (new.id, new.secret) == ("ffffffffffff", "mp_ffffffffffff_new")
    client.rotate_key(KEY_ID, overlap_seconds=0)
    api.done()


def test_a_key_id_cannot_escape_its_path() -> None:
    api = Api(
        ("GET", "/v2/keys/..%2Fendpoint", None, 404, {"error": "no API key", "error_type": "not_found"})
    )
    with pytest.raises(NotFound):
        api.client().get_key("../endpoint")
    api.done()


@pytest.mark.parametrize(
    ("status", "body", "error", "field"),
    [
        (404, {"error": "no API key abc", "error_type": "not_found"}, NotFound, None),
        (422, {"error": "bad pattern", "error_type": "validation", "field": "endpoints"}, ValidationError,
         "endpoints"),
    ],
)  # fmt: skip
def test_api_errors_are_typed(
    status: int, body: dict[str, Any], error: type[Exception], field: str | None
) -> None:
    api = Api(("POST", "/v2/keys", {"name": "ci", "endpoints": ["a b"]}, status, body))
    with pytest.raises(error) as info:
        api.client().create_key("ci", endpoints=["a b"])
    assert getattr(info.value, "field", None) == field
    assert getattr(info.value, "message", None) == body["error"]


def test_async_client_makes_the_same_calls() -> None:
    def script() -> Api:
        return Api(
            (
                "POST",
                "/v2/keys",
                {"name": "ci", "limits": {"requestsPerMinute": 5}},
                201,
                wire_key(key=SECRET),
            ),
            ("GET", "/v2/keys", None, 200, {"items": [wire_key()]}),
            ("GET", f"/v2/keys/{KEY_ID}", None, 200, wire_key()),
            ("PUT", f"/v2/keys/{KEY_ID}", {"expiresAt": None}, 200, wire_key()),
            ("POST", f"/v2/keys/{KEY_ID}/rotate", {"overlapSeconds": 60}, 201, wire_key(key=SECRET)),
            ("DELETE", f"/v2/keys/{KEY_ID}", None, 200, wire_key(status="revoked")),
            ("GET", f"/v2/keys/{KEY_ID}/usage", None, 200, USAGE),
        )

    def calls(client: Any) -> list[Callable[[], Any]]:
        return [
            lambda: client.create_key("ci", requests_per_minute=5),
            client.list_keys,
            lambda: client.get_key(KEY_ID),
            lambda: client.update_key(KEY_ID, expires_at=None),
            lambda: client.rotate_key(KEY_ID, overlap_seconds=60),
            lambda: client.revoke_key(KEY_ID),
            lambda: client.key_usage(KEY_ID),
        ]

    sync_api = script()
    sync_results = [call() for call in calls(sync_api.client())]
    sync_api.done()

    async_api = script()

    async def run() -> list[Any]:
        async with AsyncClient("http://cp", token="t0k", transport=httpx.MockTransport(async_api)) as client:
            return [await call() for call in calls(client)]

    assert asyncio.run(run()) == sync_results
    async_api.done()
    assert [r.headers["authorization"] for r in async_api.seen] == ["Bearer t0k"] * 7


def test_api_key_is_exported_lazily_from_the_package() -> None:
    assert modelport.ApiKey is ApiKey
    assert "ApiKey" in modelport.__all__
