"""What an admin call leaves in the audit trail, and writing it in the call's own transaction.

An admin call (a POST, PUT, PATCH or DELETE under /v2/) acts on one resource: an endpoint
("ns/name") or a key ("key:<id>"). Its record says who made it, the route (not its values),
the resource's state before and after as a diff, when, from where, the request id, and how it
ended (status; for a refusal, the API's own error message). States are read through the
services the API uses, so secrets stay redacted and a key's secret is never read.

The call's store writes and its record are one transaction (store/session.py `shared`): the
record is appended last and both commit together, so the trail never lacks a change that was
made; a refused call's partial writes are rolled back and the refusal is recorded. The HTTP side
(which calls are audited, holding the answer until the record is written) is
control/api/admin_audit.py. Every method here does store I/O: call them in a worker thread.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from modelport.ledger.audit_chain import AuditEntry, diff, timestamp
from modelport.store import session
from modelport.store.audit import AuditStore

_ENDPOINT = re.compile(r"^/v2/endpoint/(?P<ns>[^/]+)(?:/(?P<name>[^/]+))?(?P<rest>/.*)?$")
_KEY = re.compile(r"^/v2/keys(?:/(?P<id>[^/]+))?(?P<rest>/.*)?$")
ERROR_CHARS = 500  # of a refusal's message kept in its record

State = dict[str, Any]
Snapshot = Callable[[], State | None]


@dataclass(frozen=True)
class AdminCall:
    """An admin call as it started: what it acts on, when, and the resource's state before."""

    method: str
    path: str
    at: str  # the audit trail's timestamp text
    target: str
    before: State | None


@dataclass(frozen=True)
class CallOutcome:
    """How the call ended and who made it, as the API saw it."""

    status: int
    answer: dict[str, Any] | None  # the JSON answer (a create's names what it made; a refusal's says why)
    actor: str  # key id, "admin-token" or "anonymous"
    source: str  # the caller's address
    request_id: str


class AuditService:
    def __init__(
        self,
        audit: AuditStore,
        endpoint_state: Callable[[str, str], State | None],
        key_state: Callable[[str], State | None],
        now: Callable[[], datetime],
    ) -> None:
        self.audit = audit
        self.endpoint_state = endpoint_state  # as GET shows it, or None where there is none
        self.key_state = key_state
        self.now = now

    def connect(self) -> Connection:
        """The connection whose transaction a call shares (`session.shared`); closing it rolls
        back whatever was not committed."""
        return self.audit.engine.connect()

    def started(self, method: str, path: str) -> AdminCall:
        """Note the time and read the resource's state before the call runs (in its transaction)."""
        at = timestamp(self.now())
        target, read = self._resource(path, None)
        return AdminCall(method, path, at, target, read() if read else None)

    def record(self, call: AdminCall, outcome: CallOutcome, transaction: session.Shared) -> AuditEntry:
        """Append the call's record and commit it with the call's writes; a refused call's writes
        are rolled back first. If the record cannot be written, nothing of the call stays (raises)."""
        refused = outcome.status >= 400
        if refused:  # a refused call changes nothing, even what it wrote before failing
            transaction.rollback()
        target, read = call.target, None
        if not refused:
            created = call.before is None and outcome.status < 300  # the answer names what was made
            target, read = self._resource(call.path, outcome.answer if created else None)
        after = read() if read else call.before
        detail: dict[str, Any] = {"status": outcome.status, "changes": diff(call.before, after)}
        if refused:  # the API's own error message says why (it never echoes a secret)
            error = (outcome.answer or {}).get("error")
            detail["error"] = str(error)[:ERROR_CHARS] if error else None
        entry = AuditEntry(
            kind="admin",
            actor=outcome.actor,
            action=f"{call.method} {template(call.path)}",
            target=target,
            at=call.at,
            source=outcome.source,
            request_id=outcome.request_id,
            detail=detail,
        )
        try:
            self.audit.append([entry], transaction.conn)  # last: it locks the chain until the commit
            transaction.commit()
        except Exception:  # the change goes with its record: nothing happened that the trail lacks
            with contextlib.suppress(Exception):
                transaction.rollback()
            raise
        return entry

    def _resource(self, path: str, created: dict[str, Any] | None) -> tuple[str, Snapshot | None]:
        """What a call on `path` acts on and how to read its current state; `created`: the answer
        to a create, which names the new resource."""
        created = created or {}
        if (m := _ENDPOINT.match(path)) is not None:
            ns, name = m["ns"], m["name"] or _text(created.get("name"))
            if name is None:
                return ns, None
            return f"{ns}/{name}", lambda: self.endpoint_state(ns, name)
        if (m := _KEY.match(path)) is not None:
            key_id = m["id"] or _text(created.get("id"))
            if key_id is None:
                return "keys", None
            return f"key:{key_id}", lambda: self.key_state(key_id)
        return path, None


def template(path: str) -> str:
    """The route, not its values: `PUT /v2/endpoint/{namespace}/{name}`."""
    if (m := _ENDPOINT.match(path)) is not None:
        return "/v2/endpoint/{namespace}" + ("/{name}" if m["name"] else "") + (m["rest"] or "")
    if (m := _KEY.match(path)) is not None:
        return "/v2/keys" + ("/{id}" if m["id"] else "") + (m["rest"] or "")
    return path


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
