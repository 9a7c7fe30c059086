"""The host rules at launch time: an endpoint whose replicas this installation may no longer run
(spec/host_code.py `launch_refusal`, e.g. custom commands turned off since the create) fails
before anything is launched, and replicas of it adopted from the last run are drained and
stopped. The loop fails the endpoint once and writes one audit record (kind "host"); a failed
endpoint is not checked again until an update or resume clears it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from modelport.ledger.audit_chain import AuditEntry, timestamp
from modelport.store.records import EndpointRecord


def refused_status(why: str, running: int) -> str:
    """The failed endpoint's status message: the refusal, and what happens to replicas it had."""
    if not running:
        return why
    replicas = "its running replica is" if running == 1 else f"its {running} running replicas are"
    return f"{why}; {replicas} drained and stopped"


def host_refused(endpoint: EndpointRecord, why: str, replica_ids: Sequence[str], at: datetime) -> AuditEntry:
    """The audit record of launches refused (and running replicas stopped) for the host rules."""
    return AuditEntry(
        kind="host",
        actor="control-plane",
        action="launch replica",
        target=f"{endpoint.namespace}/{endpoint.name}",
        at=timestamp(at),
        detail={"refused": why, "replica_ids": list(replica_ids)},
    )
