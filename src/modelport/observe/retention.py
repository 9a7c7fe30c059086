"""The retention settings, applied by the control plane once at start and then every hour:
usage records (and so the analytics series) older than MODELPORT_USAGE_RETENTION_DAYS, audit
records older than MODELPORT_AUDIT_RETENTION_DAYS (0: kept forever), and request texts past
their endpoint's traffic.recordText.retentionDays (each text carries its own expiry; an export
never shows an expired one, even before this removes it). An audit purge keeps the chain
verifiable and is itself recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from modelport import envs
from modelport.store.repository import Store

log = logging.getLogger("modelport.retention")
INTERVAL_S = 3600.0


def apply_retention(store: Store, now: datetime, usage_days: float, audit_days: float) -> dict[str, int]:
    done = {"usage": 0, "audit": 0, "texts": store.texts.purge(now)}
    if usage_days > 0:
        done["usage"] = store.usage.purge(now - timedelta(days=usage_days))
    if audit_days > 0:
        before = now - timedelta(days=audit_days)
        try:
            if store.audit.count() and next(store.audit.records(None, before), None) is not None:
                done["audit"] = store.audit.purge_recorded(before, now, actor="retention")
        except ValueError as exc:  # a record that does not verify is evidence: not purged
            log.error("audit retention skipped: %s", exc)
    return done


async def run_retention(store: Store, now: Callable[[], datetime], interval_s: float = INTERVAL_S) -> None:
    while True:
        try:
            done = await asyncio.to_thread(
                apply_retention, store, now(), envs.usage_retention_days(), envs.audit_retention_days()
            )
            if any(done.values()):
                log.info("retention: deleted %d usage records, %d audit records and %d request texts",
                         done["usage"], done["audit"], done["texts"])  # fmt: skip
        except Exception:
            log.exception("applying the retention settings failed; trying again in an hour")
        await asyncio.sleep(interval_s)
