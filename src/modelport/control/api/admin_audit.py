"""Every admin call that changes something, in the audit trail: who, what, the before/after
diff, when, from where, the request id, and how it ended.

An ASGI middleware around the control API: for POST/PUT/PATCH/DELETE under /v2/ it reads the
resource before the call, holds the (small JSON) answer, reads the resource again and appends
the record before the answer goes out. The call's store writes and its record are one
transaction (store/session.py): if the record cannot be written the change is rolled back and
the caller gets 503, so the trail never lacks a change that was made; a refused call's partial
writes are rolled back and the refusal is recorded. The
resource is read through the same service the API uses, so secrets stay redacted; a key's
secret, which only its create and rotate answers carry, is never read from the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.control.services.errors import ControlError
from modelport.ledger.audit_chain import AuditEntry, diff, timestamp
from modelport.store import session
from modelport.store.audit import AuditStore

log = logging.getLogger("modelport.audit")

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ENDPOINT = re.compile(r"^/v2/endpoint/(?P<ns>[^/]+)(?:/(?P<name>[^/]+))?(?P<rest>/.*)?$")
_KEY = re.compile(r"^/v2/keys(?:/(?P<id>[^/]+))?(?P<rest>/.*)?$")

Snapshot = Callable[[], dict[str, Any] | None]


class AdminAudit:
    def __init__(
        self,
        app: ASGIApp,
        audit: AuditStore,
        actor_of: Callable[[str | None], str],
        endpoint_state: Callable[[str, str], dict[str, Any] | None],
        key_state: Callable[[str], dict[str, Any] | None],
        now: Callable[[], datetime],
    ) -> None:
        self.app = app
        self.audit = audit
        self.actor_of = actor_of
        self.endpoint_state = endpoint_state
        self.key_state = key_state
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] not in _MUTATING or not path.startswith("/v2/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        conn = await to_thread.run_sync(self.audit.engine.connect)
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
        """Run the call in `transaction`, append its record and commit both; the answer to send."""
        path = scope["path"]
        at = timestamp(self.now())
        target, read = self._resource(path, None)
        before = await to_thread.run_sync(read) if read else None
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = (b"x-request-id", request_id.encode())
                message = {**message, "headers": [*message["headers"], extra]}
            held.append(message)

        await self.app(scope, receive, hold)
        status = next((int(m["status"]) for m in held if m["type"] == "http.response.start"), 500)
        if status >= 400:  # a refused call changes nothing, even what it wrote before failing
            await to_thread.run_sync(transaction.rollback)
        if before is None and status < 300:  # a create: the answer names what was made
            target, read = self._resource(path, _answer(held))
        after = await to_thread.run_sync(read) if read and status < 400 else before
        detail: dict[str, Any] = {"status": status, "changes": diff(before, after)}
        if status >= 400:  # the API's own error message says why (it never echoes a secret)
            error = (_answer(held) or {}).get("error")
            detail["error"] = str(error)[:500] if error else None
        client = scope.get("client")
        entry = AuditEntry(
            kind="admin",
            actor=self.actor_of(headers.get("authorization")),
            action=f"{scope['method']} {_template(path)}",
            target=target,
            at=at,
            source=client[0] if client else "",
            request_id=request_id,
            detail=detail,
        )
        try:
            await to_thread.run_sync(self._commit, transaction, entry)
        except Exception:  # the change goes with its record: nothing happened that the trail lacks
            log.exception("could not write the audit record of %s %s", scope["method"], path)
            with contextlib.suppress(Exception):
                await to_thread.run_sync(transaction.rollback)
            if status < 400:
                return _unavailable(request_id)
        return held

    def _commit(self, transaction: session.Shared, entry: AuditEntry) -> None:
        self.audit.append([entry], transaction.conn)  # last: it locks the chain until the commit
        transaction.commit()

    def _resource(self, path: str, created: dict[str, Any] | None) -> tuple[str, Snapshot | None]:
        """What the call acts on ("ns/name", "key:<id>") and how to read its current state;
        `created`: the answer to a create, which names the new resource."""
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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _template(path: str) -> str:
    """The route, not its values: `PUT /v2/endpoint/{namespace}/{name}`."""
    if (m := _ENDPOINT.match(path)) is not None:
        return "/v2/endpoint/{namespace}" + ("/{name}" if m["name"] else "") + (m["rest"] or "")
    if (m := _KEY.match(path)) is not None:
        return "/v2/keys" + ("/{id}" if m["id"] else "") + (m["rest"] or "")
    return path
