"""What the store holds, as plain frozen dataclasses (no SQLAlchemy, no pydantic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelRevision:
    """The replica-affecting part of an endpoint; one row per generation."""

    repository: str
    revision: str | None
    task: str | None
    framework: str
    image_kind: str
    image_config: dict[str, Any]
    env: dict[str, str]
    secrets: dict[str, str]
    args: list[str]


@dataclass(frozen=True)
class EndpointFields:
    """What a user specifies for an endpoint, apart from its model revision."""

    namespace: str
    name: str
    type: str
    accelerator: str
    instance_type: str
    instance_size: str
    min_replica: int
    max_replica: int
    scale_to_zero_timeout: int | None
    scaling_measure: dict[str, float] | None
    scale_to_zero_after_s: float | None  # set with seconds precision (overrides the minutes)
    stabilization_s: float | None
    warm_standby: int  # replicas kept loaded but out of rotation
    vendor: str
    region: str
    tags: list[str]
    traffic: dict[str, Any] | None  # the spec's gateway settings (networks, concurrency, policies)
    intent: str  # what the user asked: active | paused | scaledToZero | deleting


@dataclass(frozen=True)
class EndpointRecord(EndpointFields):
    """A stored endpoint: what the user specified plus what the control plane keeps."""

    id: int
    generation: int  # the desired model revision
    good_generation: int  # the last generation that reached its target; 0 = never
    state: str  # written by the reconciler
    message: str
    ready_replicas: int
    target_replicas: int
    desired_replicas: int | None  # the autoscaler's count while active; None means the minimum
    update_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ReplicaRecord:
    id: str
    endpoint_id: int
    generation: int
    runtime: str
    handle: dict[str, Any]  # the runtime's handle, kept so a restarted control plane re-adopts it
    phase: str  # starting | ready | exited | stopping
    restarts: int
    last_error: str | None
    started_at: datetime
    ready_at: datetime | None
    exited_at: datetime | None


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    secret_hash: str  # sha256 hex; the secret itself is shown once and never stored
    scopes: list[str]  # inference | admin
    endpoints: list[str]  # patterns: "ns/name", "ns/*", "*"
    requests_per_minute: int | None
    tokens_per_minute: int | None
    token_budget: int | None
    budget_period: str  # hour | day | month
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None


@dataclass(frozen=True)
class UsageRecord:
    """One request through the gateway, as metered (never any prompt or completion text)."""

    request_id: str
    key_id: str | None
    namespace: str
    endpoint: str
    served_by: str
    policy: str | None
    replica_id: str | None
    path: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    first_byte_ms: float | None
    started_at: datetime
    client: str | None = None  # the caller's address
    model: str | None = None  # the model of the replica that served it: repository ...
    revision: str | None = None  # ... and revision
    # work that is not tokens, as the replica reported it: audio_seconds, images, documents, pixels
    units: dict[str, float] | None = None


@dataclass(frozen=True)
class RequestText:
    """What a request sent and got back, kept only for an endpoint that opted in, until expires_at."""

    request_id: str
    namespace: str
    endpoint: str
    at: datetime
    expires_at: datetime
    request: str  # the body as the client sent it
    completion: str  # JSON list of each choice's text
    digest: str  # SHA-256 of both (audit_chain.text_digest): what the audit record keeps


@dataclass(frozen=True)
class ScalingEvent:
    """One change of an endpoint's replica count, with why and what the decision saw."""

    endpoint_id: int
    at: datetime
    previous: int
    desired: int
    cause: str  # autoscaler | request (a request woke it) | user
    reason: str
    inputs: dict[str, float]
    id: int | None = None
