"""Conversions between the v2 wire resource, the spec models and the store's records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from modelport.spec.endpoint import EndpointSpec, Image, ImageKind, Intent, Measure
from modelport.store.records import EndpointFields, EndpointRecord, ModelRevision, ReplicaRecord, ScalingEvent

HEALTH_ROUTE = "/health"


def fields_from_spec(namespace: str, spec: EndpointSpec, intent: Intent = Intent.ACTIVE) -> EndpointFields:
    scaling = spec.compute.scaling
    measure = scaling.measure.model_dump(by_alias=True, exclude_none=True) if scaling.measure else None
    return EndpointFields(
        namespace=namespace,
        name=spec.name,
        type=spec.type.value,
        accelerator=spec.compute.accelerator,
        instance_type=spec.compute.instance_type,
        instance_size=spec.compute.instance_size,
        min_replica=scaling.min_replica,
        max_replica=scaling.max_replica,
        scale_to_zero_timeout=scaling.scale_to_zero_timeout,
        scaling_measure=measure,
        scale_to_zero_after_s=scaling.scale_to_zero_timeout_seconds,
        stabilization_s=scaling.stabilization_window_seconds,
        warm_standby=scaling.warm_standby,
        vendor=spec.provider.vendor,
        region=spec.provider.region,
        tags=list(spec.tags),
        traffic=spec.traffic.to_wire() if spec.traffic else None,
        intent=intent.value,
    )


def revision_from_spec(spec: EndpointSpec) -> ModelRevision:
    model = spec.model
    return ModelRevision(
        repository=model.repository,
        revision=model.revision,
        task=model.task,
        framework=model.framework,
        image_kind=model.image.kind.value,
        image_config=dict(model.image.config),
        env=dict(model.env),
        secrets=dict(model.secrets),
        args=list(model.args),
    )


def spec_from_records(endpoint: EndpointRecord, revision: ModelRevision) -> EndpointSpec:
    """Rebuild the spec from stored rows (no path checks: the folder may have gone since)."""
    return EndpointSpec.model_validate(
        {
            "name": endpoint.name,
            "type": endpoint.type,
            "compute": {
                "accelerator": endpoint.accelerator,
                "instanceType": endpoint.instance_type,
                "instanceSize": endpoint.instance_size,
                "scaling": {
                    "minReplica": endpoint.min_replica,
                    "maxReplica": endpoint.max_replica,
                    "scaleToZeroTimeout": endpoint.scale_to_zero_timeout,
                    "measure": Measure.model_validate(endpoint.scaling_measure)
                    if endpoint.scaling_measure
                    else None,
                    "scaleToZeroTimeoutSeconds": endpoint.scale_to_zero_after_s,
                    "stabilizationWindowSeconds": endpoint.stabilization_s,
                    "warmStandby": endpoint.warm_standby,
                },
            },
            "model": {
                "repository": revision.repository,
                "revision": revision.revision,
                "task": revision.task,
                "framework": revision.framework,
                "image": Image(kind=ImageKind(revision.image_kind), config=revision.image_config),
                "env": revision.env,
                "secrets": revision.secrets,
                "args": revision.args,
            },
            "provider": {"vendor": endpoint.vendor, "region": endpoint.region},
            "tags": endpoint.tags,
            "traffic": endpoint.traffic,
        }
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def render_endpoint(
    endpoint: EndpointRecord,
    revision: ModelRevision,
    replicas: Sequence[ReplicaRecord],
    url: str | None,
) -> dict[str, Any]:
    """The v2 object huggingface_hub's InferenceEndpoint parses, plus status.replicas."""
    body = spec_from_records(endpoint, revision).to_wire(redact_secrets=True)
    body["healthRoute"] = HEALTH_ROUTE
    body["status"] = {
        "state": endpoint.state,
        "url": url,
        "message": endpoint.message,
        "readyReplica": endpoint.ready_replicas,
        "targetReplica": endpoint.target_replicas,
        # started, loaded and out of rotation (compute.scaling.warmStandby)
        "standbyReplica": max(0, sum(1 for r in replicas if r.phase == "ready") - endpoint.ready_replicas),
        "createdAt": _iso(endpoint.created_at),
        "updatedAt": _iso(endpoint.updated_at),
        "generation": endpoint.generation,
        "replicas": [
            {
                "id": r.id,
                "generation": r.generation,
                "phase": r.phase,
                "restarts": r.restarts,
                "lastError": r.last_error,
                "startedAt": _iso(r.started_at),
                "readyAt": _iso(r.ready_at),
            }
            for r in replicas
        ],
    }
    return body


def render_event(event: ScalingEvent) -> dict[str, Any]:
    return {
        "at": _iso(event.at),
        "from": event.previous,
        "to": event.desired,
        "cause": event.cause,
        "reason": event.reason,
        "inputs": event.inputs,
    }
