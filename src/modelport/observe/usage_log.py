"""The gateway's usage log: records are queued in memory and written to the store in batches.

A request never waits for the database: `record` appends, and a background task writes what
has gathered every `interval_s` in one transaction. A failed write keeps the batch and retries
on the next flush, and `close` writes whatever is left, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from modelport.store.records import UsageRecord
from modelport.store.usage import UsageStore

log = logging.getLogger("modelport.usage")


class UsageLog:
    def __init__(self, store: UsageStore, interval_s: float = 1.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._pending: list[UsageRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, record: UsageRecord) -> None:
        self._pending.append(record)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await asyncio.to_thread(self.store.add, batch)
            except Exception:
                log.exception("writing %d usage records failed; retrying", len(batch))
                self._pending[:0] = batch

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
