"""API keys as the gateway sees them: the key format, hashing, and who a request comes from.

A key reads `mp_<id>_<secret>`: the id is public (it names the key in the API, logs and usage
records), the secret is 32 random bytes shown once and stored only as its SHA-256. High-entropy
secrets need no slow hash; the comparison is constant-time, and an unknown id still costs one
hash and one comparison so timing does not tell ids apart. The gateway keeps every key in a
`KeyRing` (memory), refreshed from the store by the control loop each tick and at once by the
key API, so a revocation is effective everywhere within one tick (0.5 s).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from modelport.auth.admin_token import bearer, token_hash
from modelport.store.records import ApiKeyRecord

KEY_PREFIX = "mp_"
# inference: call endpoints; admin: the v2 API; host: with admin, write what runs code on the host
# (custom commands, environment outside an allow-list, free-form engine flags: spec/host_code.py)
SCOPES = ("inference", "admin", "host")
_DUMMY_HASH = hashlib.sha256(b"modelport: no such key").hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, full key). The caller stores `secret_hash(full key)` and shows the key once."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def secret_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and secret and len(key_id) == 12 else None


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: an API key, or the admin token (key_id None)."""

    key_id: str | None
    scopes: frozenset[str]
    endpoints: tuple[str, ...]
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    token_budget: int | None = None
    budget_period: str = "month"

    def may_call(self, namespace: str, name: str) -> bool:
        ref = f"{namespace}/{name}"
        return "inference" in self.scopes and any(fnmatch.fnmatchcase(ref, p) for p in self.endpoints)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def may_grant(self, scopes: Iterable[str], endpoints: Iterable[str]) -> str | None:
        """Why this principal may not give a key these scopes and endpoints (None: it may): a key
        is never made, changed or rotated into more power than its maker has."""
        extra = sorted(set(scopes) - self.scopes)
        if extra:
            return f"scope {', '.join(extra)} is more than this key has ({', '.join(sorted(self.scopes))})"
        wider = [e for e in endpoints if not any(_within(e, mine) for mine in self.endpoints)]
        if wider:
            return f"endpoints {', '.join(wider)} are outside this key's own ({', '.join(self.endpoints)})"
        return None


def _within(pattern: str, mine: str) -> bool:
    """Whether every endpoint `pattern` matches is matched by `mine`. A pattern with wildcards
    is within only an identical one or `*` (matching it as text would let `team/chat-?` grant
    `team/chat-*`)."""
    if pattern == mine or mine == "*":
        return True
    return not glob.has_magic(pattern) and fnmatch.fnmatchcase(pattern, mine)


ADMIN = Principal(key_id=None, scopes=frozenset(SCOPES), endpoints=("*",))


class AuthError(Exception):
    """401: the message says what is wrong without confirming anything to a caller without the secret."""


class KeyRing:
    def __init__(self, admin_token_hash: bytes) -> None:
        self.admin_token_hash = admin_token_hash
        self._keys: dict[str, ApiKeyRecord] = {}

    def replace(self, records: Iterable[ApiKeyRecord]) -> None:
        self._keys = {r.id: r for r in records}

    def put(self, record: ApiKeyRecord) -> None:
        self._keys = {**self._keys, record.id: record}

    def authenticate(self, authorization: str | None, now: datetime) -> Principal:
        """The principal behind an Authorization header, or `AuthError`."""
        token = bearer(authorization)
        if token is None:
            raise AuthError("missing API key: send Authorization: Bearer <key>")
        key_id = key_id_of(token)
        record = self._keys.get(key_id) if key_id else None
        matches = hmac.compare_digest(secret_hash(token), record.secret_hash if record else _DUMMY_HASH)
        if record is None or not matches:
            if key_id is None and hmac.compare_digest(token_hash(token), self.admin_token_hash):
                return ADMIN
            raise AuthError("invalid API key")
        # only a caller holding the secret learns why its key no longer works
        if record.revoked_at is not None and record.revoked_at <= now:
            raise AuthError(f"API key {record.id} was revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthError(f"API key {record.id} expired at {record.expires_at.isoformat()}")
        return Principal(
            key_id=record.id,
            scopes=frozenset(record.scopes),
            endpoints=tuple(record.endpoints),
            requests_per_minute=record.requests_per_minute,
            tokens_per_minute=record.tokens_per_minute,
            token_budget=record.token_budget,
            budget_period=record.budget_period,
        )
