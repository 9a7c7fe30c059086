"""Every admin call that changes something, in the audit trail: the HTTP side.

An ASGI middleware around the control API: for POST/PUT/PATCH/DELETE under /v2/ it opens the
call's transaction (the route's store writes join it, store/session.py), lets the audit service
read the resource before, runs the call holding its (small JSON) answer, and has the service
append the record and commit both before the answer goes out. If the record cannot be written
the change is rolled back and the caller gets 503, so the trail never lacks a change that was
made. What the record holds, and the transaction's rules: control/services/audit_service.py.
A key's secret, which only its create and rotate answers carry, is never read from the answer.
Every store call runs in a worker thread, which takes this context's transaction along.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.control.services.audit_service import AuditService, CallOutcome
from modelport.control.services.errors import ControlError
from modelport.store import session

log = logging.getLogger("modelport.audit")

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AdminAudit:
    def __init__(self, app: ASGIApp, audit: AuditService, actor_of: Callable[[str | None], str]) -> None:
        self.app = app
        self.audit = audit
        self.actor_of = actor_of  # who an Authorization header names: key id, "admin-token", "anonymous"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] not in _MUTATING or not path.startswith("/v2/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        conn = await to_thread.run_sync(self.audit.connect)
        try:
            with session.shared(conn) as transaction:  # the call's store writes join it
                held = await self._audited(scope, receive, headers, request_id, transaction)
        finally:
            await to_thread.run_sync(conn.close)  # rolls back whatever was not committed
        for message in held:
            await send(message)

    async def _audited(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        request_id: str,
        transaction: session.Shared,
    ) -> list[Message]:
        """Run the call in `transaction` and have its record committed with it; the answer to send."""
        method, path = scope["method"], scope["path"]
        call = await to_thread.run_sync(self.audit.started, method, path)
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = (b"x-request-id", request_id.encode())
                message = {**message, "headers": [*message["headers"], extra]}
            held.append(message)

        await self.app(scope, receive, hold)
        status = next((int(m["status"]) for m in held if m["type"] == "http.response.start"), 500)
        client = scope.get("client")
        outcome = CallOutcome(
            status=status,
            answer=_answer(held),
            actor=self.actor_of(headers.get("authorization")),
            source=client[0] if client else "",
            request_id=request_id,
        )
        try:
            await to_thread.run_sync(self.audit.record, call, outcome, transaction)
        except Exception:  # rolled back: nothing happened that the trail lacks
            log.exception("could not write the audit record of %s %s", method, path)
            if status < 400:
                return _unavailable(request_id)
        return held


def _unavailable(request_id: str) -> list[Message]:
    """The API's error shape for a change undone because its audit record could not be written."""
    error = ControlError(
        503, "unavailable", "the change was not made: its audit record could not be written; try again"
    )
    body = json.dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    return [
        {"type": "http.response.start", "status": 503, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


def _answer(held: list[Message]) -> dict[str, Any] | None:
    body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return answer if isinstance(answer, dict) else None
