"""What a launch refused for the host rules leaves: the endpoint's status message and its audit record."""

from __future__ import annotations

from datetime import UTC, datetime

from modelport.control.reconcile.host_refusal import host_refused, refused_status
from modelport.placement.resources import fields_from_spec
from modelport.spec.endpoint import EndpointSpec
from modelport.store.records import EndpointRecord

ENDPOINT_EXTRA = dict(
    id=1, generation=1, good_generation=0, state="running", message="", ready_replicas=1,
    target_replicas=1, desired_replicas=None, update_error=None,
    created_at=datetime(2026, 12, 1, tzinfo=UTC), updated_at=datetime(2026, 12, 1, tzinfo=UTC),
)  # fmt: skip
WHY = "custom commands are off on this installation: start it with the switch"


def test_the_status_says_why_and_what_happens_to_running_replicas() -> None:
    assert refused_status(WHY, 0) == WHY
    assert refused_status(WHY, 1) == f"{WHY}; its running replica is drained and stopped"
    assert refused_status(WHY, 3).endswith("; its 3 running replicas are drained and stopped")


def test_the_audit_record_names_the_endpoint_the_reason_and_the_replicas() -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    spec = EndpointSpec.model_validate({"name": "chat", "model": {"repository": "org/chat"}})
    fields = fields_from_spec("team", spec)
    endpoint = EndpointRecord(**{**vars(fields), **ENDPOINT_EXTRA})
    entry = host_refused(endpoint, WHY, ["r1"], at)
    assert (entry.kind, entry.actor, entry.action, entry.target) == (
        "host", "control-plane", "launch replica", "team/chat"
    )  # fmt: skip
    assert entry.detail == {"refused": WHY, "replica_ids": ["r1"]}
    assert entry.at == "2026-12-01T12:00:00.000000Z"
