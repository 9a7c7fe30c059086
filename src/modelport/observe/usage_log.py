"""The gateway's usage log: records are queued in memory and written to the store in batches.

A request never waits for the database: `record` appends, and a background task writes what
has gathered every `interval_s` in one transaction, together with each request's record in
the audit trail (its metadata: no prompt or completion text; for an endpoint that opted in,
the texts go to their own table in the same transaction, and the audit record holds their
SHA-256). A failed write keeps the
batch and retries on the next flush, and `close` writes whatever is left, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from modelport.observe.audit_chain import AuditEntry, timestamp
from modelport.store.audit import AuditStore
from modelport.store.records import RequestText, UsageRecord
from modelport.store.texts import TextStore
from modelport.store.usage import UsageStore

log = logging.getLogger("modelport.usage")


class UsageLog:
    def __init__(
        self,
        store: UsageStore,
        interval_s: float = 1.0,
        audit: AuditStore | None = None,
        texts: TextStore | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.texts = texts
        self.interval_s = interval_s
        self._pending: list[tuple[UsageRecord, RequestText | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, record: UsageRecord, text: RequestText | None = None) -> None:
        self._pending.append((record, text))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception:
                log.exception("writing %d usage records failed; retrying", len(batch))
                self._pending[:0] = batch

    def _write(self, batch: list[tuple[UsageRecord, RequestText | None]]) -> None:
        with self.store.engine.begin() as conn:  # all or nothing: a retry never counts twice
            self.store.add([record for record, _ in batch], conn)
            texts = [text for _, text in batch if text is not None]
            if texts and self.texts is not None:
                self.texts.add(texts, conn)
            if self.audit is not None:
                self.audit.append([audit_entry(record, text) for record, text in batch], conn)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()


def audit_entry(record: UsageRecord, text: RequestText | None = None) -> AuditEntry:
    """A request's line in the audit trail: who called what, on which model, how it ended, what it
    cost; for a request whose texts were kept, their digest and until when they are kept."""
    detail: dict[str, object] = {
        "served_by": record.served_by,
        "policy": record.policy,
        "replica_id": record.replica_id,
        "model": record.model,
        "revision": record.revision,
        "status": record.status,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "latency_ms": round(record.latency_ms, 3),
        "first_byte_ms": None if record.first_byte_ms is None else round(record.first_byte_ms, 3),
    }
    if text is not None:
        detail["text"] = {"sha256": text.digest, "kept_until": timestamp(text.expires_at)}
    return AuditEntry(
        kind="inference",
        actor=record.key_id or "anonymous",
        action=record.path,
        target=f"{record.namespace}/{record.endpoint}",
        at=timestamp(record.started_at),
        source=record.client or "",
        request_id=record.request_id,
        detail=detail,
    )
