"""The API-key resource on the wire: the JSON a create, update or rotate sends (camelCase, no
unknown fields) and the JSON a key is shown as. Parsing turns a body into what the key service
takes (control/services/key_service.py); the rules (who may grant what, expiry in the future,
a create needs a name) are the service's."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from modelport.control.services.errors import ControlError, validation_error
from modelport.control.services.key_service import Expiry, IssuedKey, KeyChanges, KeyUsage
from modelport.spec.names import NAME_PATTERN
from modelport.store.records import ApiKeyRecord

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


def key_changes(body: Any) -> KeyChanges:
    """A create or update body as the service takes it: only what the body gives."""
    if not isinstance(body, dict):
        raise ControlError(422, "validation", "the request body must be a JSON object")
    try:
        fields = KeyFields.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if fields.expires_at is not None and fields.expires_in is not None:
        raise ControlError(422, "validation", "give expiresAt or expiresIn, not both", "expiresIn")
    expiry = None
    if fields.expires_in is not None:
        expiry = Expiry(after=timedelta(seconds=fields.expires_in))
    elif "expires_at" in fields.model_fields_set:  # null: never expires
        expiry = Expiry(at=fields.expires_at)
    limits = fields.limits
    return KeyChanges(
        name=fields.name,
        scopes=list(fields.scopes) if fields.scopes is not None else None,
        endpoints=list(fields.endpoints) if fields.endpoints is not None else None,
        expiry=expiry,
        limits={name: getattr(limits, name) for name in limits.model_fields_set} if limits else {},
    )


def rotate_overlap(body: Any) -> timedelta:
    """How long the old secret keeps working after a rotate (an hour unless the body says)."""
    try:
        rotate = RotateBody.model_validate(body if isinstance(body, dict) else {})
    except ValidationError as exc:
        raise validation_error(exc) from None
    return timedelta(seconds=rotate.overlap_seconds)


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


def render_issued(issued: IssuedKey, now: datetime) -> dict[str, Any]:
    """A new key or a rotated one: the only answers that carry the secret."""
    return render_key(issued.record, now, issued.secret)


def render_usage(usage: KeyUsage) -> dict[str, Any]:
    return {
        "keyId": usage.key.id,
        "requests": usage.requests,
        "promptTokens": usage.prompt_tokens,
        "completionTokens": usage.completion_tokens,
        "byEndpoint": [_endpoint_usage(r) for r in usage.by_endpoint],
        "budget": {
            "period": usage.key.budget_period,
            "periodStart": usage.period_start.isoformat(),
            "used": usage.used_this_period,
            "limit": usage.key.token_budget,
        },
    }


def _endpoint_usage(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace": row["namespace"],
        "name": row["name"],
        "requests": row["requests"],
        "promptTokens": row["prompt_tokens"],
        "completionTokens": row["completion_tokens"],
    }
