"""The gateway's usage log: records are queued in memory and written to the store in batches.

A request never waits for the database: `record` appends, and a background task writes what
has gathered every `interval_s` in one transaction, together with each request's record in
the audit trail (its metadata: no prompt or completion text; for an endpoint that opted in,
the texts go to their own table in the same transaction, and the audit record holds their
SHA-256). The store cuts request-derived strings to their columns (store/limits.py).

A batch that fails is written again one request at a time, so one bad row cannot hold back the
rest: a request the database refuses (a data or integrity error of its own) is set aside, counted and
logged with its metadata, never its text; while the database is unreachable the requests stay
queued for the next flush, up to `max_pending`, past which the oldest are dropped and counted.
`close` writes whatever is left, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from modelport import envs
from modelport.ledger.audit_chain import AuditEntry, timestamp
from modelport.store.audit import AuditStore
from modelport.store.records import RequestText, UsageRecord
from modelport.store.texts import TextStore
from modelport.store.usage import UsageStore

log = logging.getLogger("modelport.usage")

Item = tuple[UsageRecord, RequestText | None]


class UsageLog:
    def __init__(
        self,
        store: UsageStore,
        interval_s: float = 1.0,
        audit: AuditStore | None = None,
        texts: TextStore | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.texts = texts
        self.interval_s = interval_s
        self.max_pending = max_pending or envs.usage_queue_max()
        self._pending: list[Item] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # what /metrics reports (control/metrics.py)
        self.write_failures = 0  # batch writes the store refused (each then retried request by request)
        self.dropped = {"rejected": 0, "queue_full": 0}  # requests whose records were not written
        self._overflow = 0  # dropped for a full queue since the last flush logged it

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, record: UsageRecord, text: RequestText | None = None) -> None:
        self._pending.append((record, text))
        self._bound()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def flush(self) -> None:
        async with self._lock:
            if self._overflow:
                log.error(
                    "usage queue full (%d requests): dropped the %d oldest usage and audit records",
                    self.max_pending,
                    self._overflow,
                )
                self._overflow = 0
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await asyncio.to_thread(self._write, batch)
                return
            except Exception as exc:
                self.write_failures += 1
                log.warning(
                    "writing %d usage records failed (%s); writing them one by one", len(batch), _why(exc)
                )
            left = await asyncio.to_thread(self._write_each, batch)
            if left:  # the store is unreachable: keep them, oldest first, for the next flush
                self._pending[:0] = left
                self._bound()

    def _write_each(self, batch: list[Item]) -> list[Item]:
        """Write each request alone; set aside those the database refuses. What is left when the
        database cannot be reached, to retry."""
        for i, item in enumerate(batch):
            try:
                self._write([item])
            except Exception as exc:
                if _unreachable(exc):
                    log.warning(
                        "the store is unreachable (%s): %d usage records wait", _why(exc), len(batch) - i
                    )
                    return batch[i:]
                self._set_aside(item, exc)
        return []

    def _set_aside(self, item: Item, exc: Exception) -> None:
        record, text = item
        self.dropped["rejected"] += 1
        log.error(
            "the store refused the usage and audit record of request %s and it was set aside (%s): "
            "key=%s endpoint=%s/%s served_by=%s path=%.200r status=%d prompt_tokens=%d "
            "completion_tokens=%d units=%s started_at=%s text_kept=%s",
            record.request_id,
            _why(exc),
            record.key_id,
            record.namespace,
            record.endpoint,
            record.served_by,
            record.path,
            record.status,
            record.prompt_tokens,
            record.completion_tokens,
            record.units,
            timestamp(record.started_at),
            text is not None,
        )

    def _bound(self) -> None:
        over = len(self._pending) - self.max_pending
        if over > 0:
            del self._pending[:over]
            self.dropped["queue_full"] += over
            self._overflow += over

    def _write(self, batch: list[Item]) -> None:
        with self.store.engine.begin() as conn:  # all or nothing: a retry never counts twice
            self.store.add([record for record, _ in batch], conn)
            texts = [text for _, text in batch if text is not None]
            if texts and self.texts is not None:
                self.texts.add(texts, conn)
            if self.audit is not None:  # last: it holds the chain's lock until the commit
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


def _unreachable(exc: Exception) -> bool:
    """The database, not this row, is the problem (connection lost, locked, a table missing):
    only a data or integrity error, or a value the driver cannot send, is the row's own."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or not isinstance(exc, (DataError, IntegrityError))
    # no connection from the pool in time, or one that broke: the store, not the row
    return isinstance(exc, (PoolTimeout, DisconnectionError, OSError))


def _why(exc: Exception) -> str:
    """The driver's one-line reason: never the statement's parameters, which may hold a text."""
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(reason).strip().splitlines()
    return f"{type(reason).__name__}: {lines[0][:300] if lines else ''}"


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
    if record.units:  # only when reported: token-only requests keep the detail they always had
        detail["units"] = dict(record.units)
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
