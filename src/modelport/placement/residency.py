"""Data residency at the control plane: an endpoint runs only in this installation's region, and
only from a model source on the allowed hosts. Both are checked before anything is stored or
fetched; the refusal is an API error (and so in the audit trail, with its reason). They are
checked again before each replica launch (the installation's settings may have changed since
the create), and a refused launch is audited too."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelport import envs
from modelport.ledger.audit_chain import AuditEntry, timestamp
from modelport.models.egress import egress_refusal
from modelport.models.sources import SourceError, parse_source
from modelport.spec.endpoint import EndpointSpec, ImageKind
from modelport.store.records import EndpointRecord


def with_default_region(body: Any, region: str) -> Any:
    """A create body without `provider.region` gets the installation's."""
    if not isinstance(body, dict):
        return body
    provider = body.get("provider")
    if provider is None:
        return {**body, "provider": {"region": region}}
    if isinstance(provider, dict) and "region" not in provider:
        return {**body, "provider": {**provider, "region": region}}
    return body


def placement_refusal(spec: EndpointSpec, region: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(field, why) when the endpoint may not run here; None when it may."""
    if spec.provider.region != region:
        return (
            "provider.region",
            f"placement refused: this installation runs replicas in region {region!r} "
            f"({envs.REGION.name}), and the endpoint asks for {spec.provider.region!r}; "
            f"set provider.region to {region!r} or leave it out",
        )
    if spec.model.image.kind == ImageKind.CUSTOM:
        return None  # the user's own server fetches what it fetches; modelport pulls nothing for it
    try:
        source = parse_source(spec.model.repository, spec.model.revision)
    except SourceError:
        return None  # parse_spec reports a source it cannot read
    refusal = egress_refusal(source, {**env, **spec.model.env, **spec.model.secrets})
    return None if refusal is None else ("model.repository", f"refused: {refusal}")


def launch_refused(endpoint: EndpointRecord, replica_id: str, why: str, at: datetime) -> AuditEntry:
    """The audit record of a replica launch refused for residency (region or model source host)."""
    return AuditEntry(
        kind="residency",
        actor="control-plane",
        action="launch replica",
        target=f"{endpoint.namespace}/{endpoint.name}",
        at=timestamp(at),
        detail={"refused": why, "replica_id": replica_id},
    )
