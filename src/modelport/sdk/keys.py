"""API keys in the SDK: the `ApiKey` value and the sans-IO operations on /v2/keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelport.sdk.core import Operation, request

KEYS_PATH = "/v2/keys"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    scopes: list[str]
    endpoints: list[str]
    limits: dict[str, Any]
    status: str  # active | expired | revoked
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    rotated_to: str | None
    secret: str | None = field(default=None, repr=False)  # the full key: only from create and rotate
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the API's JSON

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> ApiKey:
        return cls(
            id=raw["id"],
            name=raw["name"],
            prefix=raw["prefix"],
            scopes=list(raw["scopes"]),
            endpoints=list(raw["endpoints"]),
            limits=dict(raw["limits"]),
            status=raw["status"],
            created_at=raw["createdAt"],
            expires_at=raw.get("expiresAt"),
            revoked_at=raw.get("revokedAt"),
            rotated_to=raw.get("rotatedTo"),
            secret=raw.get("key"),
            raw=raw,
        )


def key_fields(
    *,
    name: str | None = None,
    scopes: list[str] | None = None,
    endpoints: list[str] | None = None,
    expires_in: int | None = None,
    expires_at: str | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    token_budget: int | None = None,
    budget_period: str | None = None,
) -> dict[str, Any]:
    """A create or partial-update body with only what was given."""
    limits = {
        k: v
        for k, v in {
            "requestsPerMinute": requests_per_minute,
            "tokensPerMinute": tokens_per_minute,
            "tokenBudget": token_budget,
            "budgetPeriod": budget_period,
        }.items()
        if v is not None
    }
    body: dict[str, Any] = {
        k: v
        for k, v in {
            "name": name,
            "scopes": scopes,
            "endpoints": endpoints,
            "expiresIn": expires_in,
            "expiresAt": expires_at,
        }.items()
        if v is not None
    }
    if limits:
        body["limits"] = limits
    return body


def _key(method: str, path: str, body: Any = None) -> Operation:
    return ApiKey.from_wire((yield from request(method, path, body)))


def create_key(body: dict[str, Any]) -> Operation:
    return _key("POST", KEYS_PATH, body)


def list_keys() -> Operation:
    body = yield from request("GET", KEYS_PATH)
    return [ApiKey.from_wire(raw) for raw in body["items"]]


def get_key(key_id: str) -> Operation:
    return _key("GET", f"{KEYS_PATH}/{key_id}")


def update_key(key_id: str, body: dict[str, Any]) -> Operation:
    return _key("PUT", f"{KEYS_PATH}/{key_id}", body)


def revoke_key(key_id: str) -> Operation:
    return _key("DELETE", f"{KEYS_PATH}/{key_id}")


def rotate_key(key_id: str, overlap_seconds: int) -> Operation:
    return _key("POST", f"{KEYS_PATH}/{key_id}/rotate", {"overlapSeconds": overlap_seconds})


def key_usage(key_id: str) -> Operation:
    body = yield from request("GET", f"{KEYS_PATH}/{key_id}/usage")
    return dict(body)
