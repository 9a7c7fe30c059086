"""API keys as a resource: create (secret shown once), list, get, update, revoke, rotate, usage.

The store keeps only each secret's hash. Every change is also put into the gateway's
`KeyRing` at once, so a revoked key is refused from the next request on; a background sync
(`sync_keys`) re-reads the store twice a second for any change made elsewhere.

An admin key manages only keys within its own power: it never makes, changes, rotates or
revokes a key with a scope it lacks or endpoints outside its own, so it cannot mint the `host`
scope it was not given (the admin token has every scope).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from modelport.auth.api_keys import KeyRing, Principal, new_key, secret_hash
from modelport.control.services.errors import ControlError, validation_error
from modelport.gateway.limits import period_start
from modelport.spec.names import NAME_PATTERN
from modelport.store import session
from modelport.store.errors import NotFound
from modelport.store.records import ApiKeyRecord
from modelport.store.repository import Store

log = logging.getLogger("modelport.keys")
_NAME = NAME_PATTERN.strip("^$")
_PATTERN = re.compile(rf"^(\*|{_NAME}/(\*|{_NAME}))$")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class KeyLimits(_Wire):
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    token_budget: int | None = Field(default=None, ge=1)
    budget_period: Literal["hour", "day", "month"] = "month"  # gateway/limits.py PERIODS


class KeyFields(_Wire):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    # auth/api_keys.py SCOPES
    scopes: list[Literal["inference", "admin", "host"]] | None = Field(default=None, min_length=1)
    endpoints: list[str] | None = Field(default=None, min_length=1)
    expires_at: datetime | None = None
    expires_in: int | None = Field(default=None, ge=1, description="seconds from now")
    limits: KeyLimits | None = None

    @field_validator("endpoints")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            if not _PATTERN.match(item):
                raise ValueError(f'{item!r} is not an endpoint pattern: use "ns/name", "ns/*" or "*"')
        return value


class RotateBody(_Wire):
    overlap_seconds: int = Field(default=3600, ge=0, le=30 * 86400)


def render_key(key: ApiKeyRecord, now: datetime, secret: str | None = None) -> dict[str, Any]:
    status = "active"
    if key.revoked_at is not None and key.revoked_at <= now:
        status = "revoked"
    elif key.expires_at is not None and key.expires_at <= now:
        status = "expired"
    out: dict[str, Any] = {
        "id": key.id,
        "name": key.name,
        "prefix": f"mp_{key.id}",
        "scopes": key.scopes,
        "endpoints": key.endpoints,
        "limits": {
            "requestsPerMinute": key.requests_per_minute,
            "tokensPerMinute": key.tokens_per_minute,
            "tokenBudget": key.token_budget,
            "budgetPeriod": key.budget_period,
        },
        "createdAt": key.created_at.isoformat(),
        "expiresAt": key.expires_at.isoformat() if key.expires_at else None,
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
        "rotatedTo": key.rotated_to,
        "status": status,
    }
    if secret is not None:
        out["key"] = secret
    return out


def _parse(body: Any) -> KeyFields:
    if not isinstance(body, dict):
        raise ControlError(422, "validation", "the request body must be a JSON object")
    try:
        fields = KeyFields.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if fields.expires_at is not None and fields.expires_in is not None:
        raise ControlError(422, "validation", "give expiresAt or expiresIn, not both", "expiresIn")
    return fields


class KeyService:
    def __init__(self, store: Store, ring: KeyRing, now: Callable[[], datetime]) -> None:
        self.store = store
        self.ring = ring
        self.now = now

    def create(self, body: Any, principal: Principal) -> dict[str, Any]:
        fields = _parse(body)
        if fields.name is None:
            raise ControlError(422, "validation", "name: a key needs a name", "name")
        now = self.now()
        limits = fields.limits or KeyLimits()
        scopes, endpoints = list(fields.scopes or ["inference"]), list(fields.endpoints or ["*"])
        _check_power(principal, scopes, endpoints)
        key_id, secret = new_key()
        record = self.store.keys.create(
            ApiKeyRecord(
                id=key_id,
                name=fields.name,
                secret_hash=secret_hash(secret),
                scopes=scopes,
                endpoints=endpoints,
                requests_per_minute=limits.requests_per_minute,
                tokens_per_minute=limits.tokens_per_minute,
                token_budget=limits.token_budget,
                budget_period=limits.budget_period,
                created_at=now,
                expires_at=self._expiry(fields, now),
                revoked_at=None,
                rotated_to=None,
            )
        )
        self._publish(record)
        log.info("created API key %s (%s)", record.id, record.name)
        return render_key(record, now, secret)

    def _publish(self, record: ApiKeyRecord) -> None:
        """Give the gateway the key once its change is committed (an admin call whose audit record
        fails is rolled back, and the gateway must not keep what the store lost)."""
        session.after_commit(self.store.engine, functools.partial(self.ring.put, record))

    def list(self) -> dict[str, Any]:
        now = self.now()
        return {"items": [render_key(k, now) for k in self.store.keys.list()]}

    def get(self, key_id: str) -> dict[str, Any]:
        return render_key(self._find(key_id), self.now())

    def update(self, key_id: str, body: Any, principal: Principal) -> dict[str, Any]:
        current = self._find_within(key_id, principal)
        fields = _parse(body)
        now = self.now()
        changes: dict[str, Any] = {}
        if fields.name is not None:
            changes["name"] = fields.name
        if fields.scopes is not None:
            changes["scopes"] = list(fields.scopes)
        if fields.endpoints is not None:
            changes["endpoints"] = list(fields.endpoints)
        if "expires_at" in fields.model_fields_set or fields.expires_in is not None:
            changes["expires_at"] = self._expiry(fields, now)
        if fields.limits is not None:
            given = fields.limits.model_fields_set
            for name in ("requests_per_minute", "tokens_per_minute", "token_budget", "budget_period"):
                if name in given:
                    changes[name] = getattr(fields.limits, name)
        scopes, endpoints = changes.get("scopes", current.scopes), changes.get("endpoints", current.endpoints)
        _check_power(principal, scopes, endpoints)
        record = self.store.keys.update(current.id, **changes) if changes else current
        self._publish(record)
        return render_key(record, now)

    def revoke(self, key_id: str, principal: Principal) -> dict[str, Any]:
        current = self._find_within(key_id, principal)
        now = self.now()
        record = current if current.revoked_at else self.store.keys.update(current.id, revoked_at=now)
        self._publish(record)
        log.info("revoked API key %s", record.id)
        return render_key(record, now)

    def rotate(self, key_id: str, body: Any, principal: Principal) -> dict[str, Any]:
        current = self._find_within(key_id, principal)
        try:
            overlap = RotateBody.model_validate(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            raise validation_error(exc) from None
        now = self.now()
        if current.revoked_at is not None:
            raise ControlError(400, "bad_request", f"key {key_id} is revoked: create a new key instead")
        new_id, secret = new_key()
        old_end = now + timedelta(seconds=overlap.overlap_seconds)
        if current.expires_at is not None:
            old_end = min(old_end, current.expires_at)
        fresh = ApiKeyRecord(
            **{**current.__dict__, "id": new_id, "secret_hash": secret_hash(secret), "created_at": now,
               "revoked_at": None, "rotated_to": None}
        )  # fmt: skip
        record = self.store.keys.rotate(current.id, fresh, old_end)
        self._publish(record)
        self._publish(self.store.keys.get(current.id))
        log.info("rotated API key %s to %s (old one works until %s)", current.id, new_id, old_end.isoformat())
        return render_key(record, now, secret)

    def usage(self, key_id: str) -> dict[str, Any]:
        key = self._find(key_id)
        now = self.now()
        rows = self.store.usage.by_endpoint(key_id=key.id)
        start = period_start(key.budget_period, now)
        used = sum(
            r["prompt_tokens"] + r["completion_tokens"] for r in self.store.usage.by_endpoint(key.id, start)
        )
        return {
            "keyId": key.id,
            "requests": sum(r["requests"] for r in rows),
            "promptTokens": sum(r["prompt_tokens"] for r in rows),
            "completionTokens": sum(r["completion_tokens"] for r in rows),
            "byEndpoint": [_endpoint_usage(r) for r in rows],
            "budget": {
                "period": key.budget_period,
                "periodStart": start.isoformat(),
                "used": used,
                "limit": key.token_budget,
            },
        }

    def _find(self, key_id: str) -> ApiKeyRecord:
        try:
            return self.store.keys.get(key_id.removeprefix("mp_"))
        except NotFound:
            raise ControlError(404, "not_found", f"no API key {key_id}") from None

    def _find_within(self, key_id: str, principal: Principal) -> ApiKeyRecord:
        key = self._find(key_id)
        _check_power(principal, key.scopes, key.endpoints, f"key {key.id}")
        return key

    def _expiry(self, fields: KeyFields, now: datetime) -> datetime | None:
        if fields.expires_in is not None:
            return now + timedelta(seconds=fields.expires_in)
        if fields.expires_at is not None:
            at = (
                fields.expires_at
                if fields.expires_at.tzinfo
                else fields.expires_at.replace(tzinfo=now.tzinfo)
            )
            if at <= now:
                raise ControlError(422, "validation", "expiresAt is in the past", "expiresAt")
            return at
        return None


def _check_power(principal: Principal, scopes: list[str], endpoints: list[str], what: str = "") -> None:
    why = principal.may_grant(scopes, endpoints)
    if why is not None:
        about = f" on {what}" if what else ""
        raise ControlError(403, "forbidden", f"an admin key may not act{about}: {why}", "scopes")


def _endpoint_usage(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace": row["namespace"],
        "name": row["name"],
        "requests": row["requests"],
        "promptTokens": row["prompt_tokens"],
        "completionTokens": row["completion_tokens"],
    }


async def sync_keys(store: Store, ring: KeyRing, interval_s: float = 0.5) -> None:
    """Keep the ring equal to the store (changes made by another process, expiry needs none)."""
    while True:
        with contextlib.suppress(Exception):
            ring.replace(await asyncio.to_thread(store.keys.list))
        await asyncio.sleep(interval_s)
