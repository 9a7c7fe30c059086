"""API keys in the SDK: the `ApiKey` value and the sans-IO operations on /v2/keys.

The operations live here rather than in core.py because they return `ApiKey`; like core.py's,
they only yield `Call`s, and `Client` / `AsyncClient` drive them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict
from urllib.parse import quote

from modelport.sdk.core import Operation, request

KEYS_PATH = "/v2/keys"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str  # "mp_<id>": what the gateway logs and the key's first characters
    scopes: list[str]  # "inference", "admin", "host" (with admin: may write code run on the host)
    endpoints: list[str]  # "ns/name", "ns/*" or "*"
    limits: dict[str, Any]  # requestsPerMinute, tokensPerMinute, tokenBudget, budgetPeriod
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


class KeyOptions(TypedDict, total=False):
    """What `create_key` takes besides the name; left out or None: the API's default (scopes
    ["inference"], endpoints ["*"], no expiry, no limits, budget period "month")."""

    scopes: list[str] | None
    endpoints: list[str] | None
    expires_in: int | None  # seconds from now
    expires_at: str | datetime | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    token_budget: int | None
    budget_period: str | None  # hour | day | month


class KeyChanges(TypedDict, total=False):
    """What `update_key` may change. A field left out stays as it is; None for `expires_at`
    (never expire) or for a limit (no limit) clears it."""

    name: str
    scopes: list[str]
    endpoints: list[str]
    expires_in: int  # seconds from now
    expires_at: str | datetime | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    token_budget: int | None
    budget_period: str  # hour | day | month


_TOP = {"name": "name", "scopes": "scopes", "endpoints": "endpoints",
        "expires_in": "expiresIn", "expires_at": "expiresAt"}  # fmt: skip
_LIMITS = {"requests_per_minute": "requestsPerMinute", "tokens_per_minute": "tokensPerMinute",
           "token_budget": "tokenBudget", "budget_period": "budgetPeriod"}  # fmt: skip


def key_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The wire body for exactly the fields given: camelCase, limits nested, datetimes as ISO."""
    body: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        if name in _TOP:
            body[_TOP[name]] = value
        elif name in _LIMITS:
            limits[_LIMITS[name]] = value
        else:
            raise TypeError(f"unknown API key field {name!r}")
    if limits:
        body["limits"] = limits
    return body


def _path(key_id: str, action: str | None = None) -> str:
    return f"{KEYS_PATH}/{quote(key_id, safe='')}" + (f"/{action}" if action else "")


def _key(method: str, path: str, body: Any = None) -> Operation:
    return ApiKey.from_wire((yield from request(method, path, body)))


def create_key(name: str, options: KeyOptions) -> Operation:
    """POST /v2/keys with what was given (a None value counts as not given)."""
    body = key_body({"name": name, **{k: v for k, v in options.items() if v is not None}})
    return _key("POST", KEYS_PATH, body)


def list_keys() -> Operation:
    body = yield from request("GET", KEYS_PATH)
    return [ApiKey.from_wire(raw) for raw in body["items"]]


def get_key(key_id: str) -> Operation:
    return _key("GET", _path(key_id))


def update_key(key_id: str, changes: Mapping[str, Any]) -> Operation:
    """PUT a partial body: only the fields in `changes` (see `KeyChanges`)."""
    return _key("PUT", _path(key_id), key_body(changes))


def revoke_key(key_id: str) -> Operation:
    return _key("DELETE", _path(key_id))


def rotate_key(key_id: str, overlap_seconds: int = 3600) -> Operation:
    return _key("POST", _path(key_id, "rotate"), {"overlapSeconds": overlap_seconds})


def key_usage(key_id: str) -> Operation:
    body = yield from request("GET", _path(key_id, "usage"))
    return dict(body)


def usage_report(by: str, start: str | None, end: str | None) -> Operation:
    params = {k: v for k, v in {"by": by, "from": start, "to": end}.items() if v is not None}
    body = yield from request("GET", "/v2/usage", params=params)
    return dict(body)
