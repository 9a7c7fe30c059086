"""`traffic`: an endpoint's gateway settings (a modelport extension of the v2 resource).

- allowNetworks: CIDRs a `private` endpoint accepts callers from (empty: the gateway's default).
- maxConcurrent / maxQueue: at most this many requests in flight to the endpoint; up to
  maxQueue more wait in order, and beyond that the gateway answers 429.
- overflow: send a request to another endpoint (same namespace) while this one has more than
  `queueAbove` outstanding requests (in flight plus waiting) — baseline on an always-on
  endpoint, bursts on a scale-to-zero one.
- fallback: another endpoint that serves a request this one cannot (paused, failed, no replica
  answered, or a 5xx before anything reached the client).
- recordText: opt in to keeping each request's body and completion text for `retentionDays`
  (off by default: no prompt or completion text is kept anywhere). The texts go to the store
  only, never to a log; each request's audit record carries their SHA-256, so a kept text is
  proven unchanged, and the record still verifies once the text has expired.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from modelport.spec.names import NAME_PATTERN


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Overflow(_Wire):
    endpoint: str = Field(pattern=NAME_PATTERN)
    queue_above: int = Field(ge=0, description="outstanding requests (in flight + waiting) before overflow")


class RecordText(_Wire):
    retention_days: float = Field(gt=0, le=3650, description="days a request's texts are kept, then deleted")


class Traffic(_Wire):
    allow_networks: list[str] = Field(default_factory=list)
    max_concurrent: int | None = Field(default=None, ge=1)
    max_queue: int = Field(default=256, ge=0)
    overflow: Overflow | None = None
    fallback: str | None = Field(default=None, pattern=NAME_PATTERN)
    record_text: RecordText | None = None

    @field_validator("allow_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        out = []
        for cidr in value:
            try:
                out.append(str(ipaddress.ip_network(cidr, strict=False)))
            except ValueError:
                raise ValueError(f"{cidr!r} is not a network: give CIDRs such as 10.0.0.0/8") from None
        return out

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")
