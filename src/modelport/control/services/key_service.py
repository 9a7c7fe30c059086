"""API keys as a resource: create (secret shown once), list, get, update, revoke, rotate, usage.

The store keeps only each secret's hash. Every change is also put into the gateway's
`KeyRing` once it is committed, so a revoked key is refused from the next request on (the
control plane's key sync, control/reconcile/key_sync.py, picks up changes made elsewhere).
What a body says arrives parsed (control/api/key_wire.py); the answers are records, shown by
the API.

An admin key manages only keys within its own power: it never makes, changes, rotates or
revokes a key with a scope it lacks or endpoints outside its own, so it cannot mint the `host`
scope it was not given (the admin token has every scope).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelport.auth.api_keys import KeyRing, Principal, new_key, secret_hash
from modelport.control.services.errors import ControlError
from modelport.gateway.limits import period_start
from modelport.store import session
from modelport.store.errors import NotFound
from modelport.store.records import ApiKeyRecord
from modelport.store.repository import Store

log = logging.getLogger("modelport.keys")

DEFAULT_SCOPES = ("inference",)
DEFAULT_ENDPOINTS = ("*",)
DEFAULT_BUDGET_PERIOD = "month"
LIMITS = ("requests_per_minute", "tokens_per_minute", "token_budget", "budget_period")


@dataclass(frozen=True)
class Expiry:
    """When a key stops working: at a time, a while after the change, or never (neither given)."""

    at: datetime | None = None
    after: timedelta | None = None


@dataclass(frozen=True)
class KeyChanges:
    """What a create or an update asks for; None (or a limit left out): not asked, so a create
    takes the default and an update keeps what the key has."""

    name: str | None = None
    scopes: list[str] | None = None
    endpoints: list[str] | None = None
    expiry: Expiry | None = None
    limits: dict[str, Any] = field(default_factory=dict)  # of LIMITS


@dataclass(frozen=True)
class IssuedKey:
    """A key just made (or rotated to) and its secret, which is never stored or shown again."""

    record: ApiKeyRecord
    secret: str


@dataclass(frozen=True)
class KeyUsage:
    key: ApiKeyRecord
    requests: int
    prompt_tokens: int
    completion_tokens: int
    by_endpoint: list[dict[str, Any]]  # the store's rows: namespace, name, requests, tokens
    period_start: datetime  # of the key's budget period now
    used_this_period: int  # tokens


class KeyService:
    def __init__(self, store: Store, ring: KeyRing, now: Callable[[], datetime]) -> None:
        self.store = store
        self.ring = ring
        self.now = now

    def create(self, asked: KeyChanges, principal: Principal) -> IssuedKey:
        if asked.name is None:
            raise ControlError(422, "validation", "name: a key needs a name", "name")
        now = self.now()
        limits = {**dict.fromkeys(LIMITS), "budget_period": DEFAULT_BUDGET_PERIOD, **asked.limits}
        scopes = list(asked.scopes or DEFAULT_SCOPES)
        endpoints = list(asked.endpoints or DEFAULT_ENDPOINTS)
        _check_power(principal, scopes, endpoints)
        key_id, secret = new_key()
        record = self.store.keys.create(
            ApiKeyRecord(
                id=key_id,
                name=asked.name,
                secret_hash=secret_hash(secret),
                scopes=scopes,
                endpoints=endpoints,
                requests_per_minute=limits["requests_per_minute"],
                tokens_per_minute=limits["tokens_per_minute"],
                token_budget=limits["token_budget"],
                budget_period=limits["budget_period"],
                created_at=now,
                expires_at=_expiry(asked.expiry, now),
                revoked_at=None,
                rotated_to=None,
            )
        )
        self._publish(record)
        log.info("created API key %s (%s)", record.id, record.name)
        return IssuedKey(record, secret)

    def _publish(self, record: ApiKeyRecord) -> None:
        """Give the gateway the key once its change is committed (an admin call whose audit record
        fails is rolled back, and the gateway must not keep what the store lost)."""
        session.after_commit(self.store.engine, functools.partial(self.ring.put, record))

    def list(self) -> list[ApiKeyRecord]:
        return self.store.keys.list()

    def get(self, key_id: str) -> ApiKeyRecord:
        return self._find(key_id)

    def update(self, key_id: str, asked: KeyChanges, principal: Principal) -> ApiKeyRecord:
        current = self._find_within(key_id, principal)
        given = {"name": asked.name, "scopes": asked.scopes, "endpoints": asked.endpoints}
        changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        if asked.expiry is not None:
            changes["expires_at"] = _expiry(asked.expiry, self.now())
        changes.update(asked.limits)
        scopes, endpoints = changes.get("scopes", current.scopes), changes.get("endpoints", current.endpoints)
        _check_power(principal, scopes, endpoints)
        record = self.store.keys.update(current.id, **changes) if changes else current
        self._publish(record)
        return record

    def revoke(self, key_id: str, principal: Principal) -> ApiKeyRecord:
        current = self._find_within(key_id, principal)
        record = current if current.revoked_at else self.store.keys.update(current.id, revoked_at=self.now())
        self._publish(record)
        log.info("revoked API key %s", record.id)
        return record

    def rotate(self, key_id: str, overlap: timedelta, principal: Principal) -> IssuedKey:
        """A new key with the old one's name, scopes, endpoints, limits and expiry; the old one
        works for `overlap` more (never past its own expiry)."""
        current = self._find_within(key_id, principal)
        now = self.now()
        if current.revoked_at is not None:
            raise ControlError(400, "bad_request", f"key {key_id} is revoked: create a new key instead")
        new_id, secret = new_key()
        old_end = now + overlap
        if current.expires_at is not None:
            old_end = min(old_end, current.expires_at)
        fresh = dataclasses.replace(
            current,
            id=new_id,
            secret_hash=secret_hash(secret),
            created_at=now,
            revoked_at=None,
            rotated_to=None,
        )
        record = self.store.keys.rotate(current.id, fresh, old_end)
        self._publish(record)
        self._publish(self.store.keys.get(current.id))
        log.info("rotated API key %s to %s (old one works until %s)", current.id, new_id, old_end.isoformat())
        return IssuedKey(record, secret)

    def usage(self, key_id: str) -> KeyUsage:
        key = self._find(key_id)
        rows = self.store.usage.by_endpoint(key_id=key.id)
        start = period_start(key.budget_period, self.now())
        used = sum(
            r["prompt_tokens"] + r["completion_tokens"] for r in self.store.usage.by_endpoint(key.id, start)
        )
        return KeyUsage(
            key=key,
            requests=sum(r["requests"] for r in rows),
            prompt_tokens=sum(r["prompt_tokens"] for r in rows),
            completion_tokens=sum(r["completion_tokens"] for r in rows),
            by_endpoint=rows,
            period_start=start,
            used_this_period=used,
        )

    def _find(self, key_id: str) -> ApiKeyRecord:
        try:
            return self.store.keys.get(key_id.removeprefix("mp_"))
        except NotFound:
            raise ControlError(404, "not_found", f"no API key {key_id}") from None

    def _find_within(self, key_id: str, principal: Principal) -> ApiKeyRecord:
        key = self._find(key_id)
        _check_power(principal, key.scopes, key.endpoints, f"key {key.id}")
        return key


def _expiry(expiry: Expiry | None, now: datetime) -> datetime | None:
    """The moment a key expires (None: never); a time given without a zone is in `now`'s."""
    if expiry is None:
        return None
    if expiry.after is not None:
        return now + expiry.after
    if expiry.at is not None:
        at = expiry.at if expiry.at.tzinfo else expiry.at.replace(tzinfo=now.tzinfo)
        if at <= now:
            raise ControlError(422, "validation", "expiresAt is in the past", "expiresAt")
        return at
    return None


def _check_power(principal: Principal, scopes: list[str], endpoints: list[str], what: str = "") -> None:
    why = principal.may_grant(scopes, endpoints)
    if why is not None:
        about = f" on {what}" if what else ""
        raise ControlError(403, "forbidden", f"an admin key may not act{about}: {why}", "scopes")
