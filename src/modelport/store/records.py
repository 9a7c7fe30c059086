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
    vendor: str
    region: str
    tags: list[str]
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
