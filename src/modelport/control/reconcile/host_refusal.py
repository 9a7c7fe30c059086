"""The host rules at launch time: an endpoint whose replicas this installation may no longer run
(spec/host_code.py `launch_refusal`, e.g. custom commands turned off since the create) fails
before anything is launched, and replicas of it adopted from the last run are drained and
stopped. The loop fails the endpoint once and writes one audit record (kind "host"); a failed
endpoint is not checked again until an update or resume clears it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from modelport.control.reconcile.revisions import RevisionCache
from modelport.control.status import STOPPING
from modelport.ledger.audit_chain import AuditEntry, timestamp
from modelport.placement.resources import spec_from_records
from modelport.spec.endpoint import EndpointState, Intent
from modelport.spec.host_code import launch_refusal
from modelport.store import session
from modelport.store.records import EndpointRecord, ReplicaRecord
from modelport.store.repository import NotFound, Stale, Store

log = logging.getLogger("modelport.control")


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


class HostRefusals:
    """Checks each tick's endpoints against the host rules and fails those refused."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        revisions: RevisionCache,
        allow_custom_commands: bool,
    ) -> None:
        self.store = store
        self.now = now
        self.revisions = revisions
        self.allow_custom_commands = allow_custom_commands
        self._refusals: dict[tuple[int, int], str | None] = {}  # of (endpoint, generation)

    async def check(
        self, endpoints: list[EndpointRecord], replicas: Sequence[ReplicaRecord]
    ) -> list[EndpointRecord]:
        """Fail, before anything is planned, each endpoint this installation may no longer run
        (custom commands turned off since its create): none of its replicas is launched, and the
        planner drains and stops those adopted from the last run. A failed endpoint is not checked
        again until an update or resume clears it, so each refusal is audited once."""
        checked = []
        for endpoint in endpoints:
            live = [r.id for r in replicas if r.endpoint_id == endpoint.id and r.phase != STOPPING]
            runs = endpoint.intent == Intent.ACTIVE or (endpoint.intent == Intent.SCALED_TO_ZERO and live)
            if runs and endpoint.state != EndpointState.FAILED:
                why = self.refusal(endpoint)
                if why is not None:
                    endpoint = await self.fail(endpoint, why, live)
            checked.append(endpoint)
        return checked

    def refusal(self, endpoint: EndpointRecord) -> str | None:
        """launch_refusal for the endpoint's current generation (a revision is immutable and the
        switch fixed for this run, so the answer is kept)."""
        key = (endpoint.id, endpoint.generation)
        if key not in self._refusals:
            revision = self.revisions.get(*key)
            if revision is None:
                return None
            spec = spec_from_records(endpoint, revision)
            self._refusals[key] = launch_refusal(spec, self.allow_custom_commands)
        return self._refusals[key]

    async def fail(self, endpoint: EndpointRecord, why: str, live: list[str]) -> EndpointRecord:
        """The endpoint failed for the host rules and its audit record, in one transaction."""
        message = refused_status(why, len(live))

        def write() -> EndpointRecord:
            with self.store.engine.connect() as conn, session.shared(conn) as transaction:
                failed = self.store.update_endpoint(
                    endpoint.id,
                    self.now(),
                    if_unchanged_since=endpoint.updated_at,
                    state=EndpointState.FAILED.value,
                    message=message,
                )
                self.store.audit.append([host_refused(endpoint, why, live, self.now())], conn)
                transaction.commit()  # else closing the connection rolls both back
            return failed

        try:
            failed = await asyncio.to_thread(write)
        except (NotFound, Stale):  # changed by the API meanwhile: the next tick checks it afresh
            return endpoint
        log.warning("endpoint %s failed: %s", endpoint.name, message)
        return failed
