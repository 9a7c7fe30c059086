"""The gateway's usage and audit writes in real SQLite and PostgreSQL, when a request carries more
than a column holds: a 300-character path and a 200-character forwarded address are written
clipped (and the audit chain, which hashes what is stored, verifies), and the requests after them
are written too; a request the database refuses is set aside and counted, not retried forever in
front of the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select

from modelport.control.metrics import ControlCollector
from modelport.gateway.routing import RoutingTable
from modelport.ledger.audit_chain import text_digest
from modelport.observe.usage_log import UsageLog
from modelport.store import tables
from modelport.store.records import RequestText, UsageRecord
from modelport.store.repository import Store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LONG_PATH = "/v1/" + "p" * 296  # 300 characters
LONG_CLIENT = ", ".join(["203.0.113.7"] * 16)[:200]  # an X-Forwarded-For chain, 200 characters


def usage(i: int, path: str = "/v1/completions", client: str | None = "127.0.0.1") -> UsageRecord:
    return UsageRecord(request_id=f"req-{i}", key_id="k1", namespace="default", endpoint="chat",
                       served_by="chat", policy=None, replica_id="r1", path=path, status=200,
                       prompt_tokens=3, completion_tokens=5, latency_ms=12.5, first_byte_ms=3.0,
                       started_at=T0 + timedelta(seconds=i), client=client)  # fmt: skip


def text(i: int, request: str) -> RequestText:
    request_id = f"req-{i}"
    return RequestText(request_id, "default", "chat", T0, T0 + timedelta(days=30), request, '["ok"]',
                       text_digest(request_id, request, '["ok"]'))  # fmt: skip


def rows(store: Store) -> list[tuple[str, str, str | None]]:
    t = tables.usage_records
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.c.request_id, t.c.path, t.c.client).order_by(t.c.id))]


def test_a_long_path_and_forwarded_address_are_written_clipped_and_the_rest_follow(store: Store) -> None:
    log = UsageLog(store.usage, audit=store.audit, texts=store.texts)
    log.record(usage(1))
    log.record(usage(2, LONG_PATH, LONG_CLIENT))
    log.record(usage(3))
    asyncio.run(log.flush())
    log.record(usage(4))
    asyncio.run(log.flush())

    written = rows(store)
    assert [r[0] for r in written] == ["req-1", "req-2", "req-3", "req-4"]
    _, path, client = written[1]
    assert len(path) == 256 and path.startswith(LONG_PATH[:250]) and path.endswith("…")
    assert client is not None and len(client) == 64 and client.startswith(LONG_CLIENT[:60])
    assert log.pending == 0 and log.dropped == {"rejected": 0, "queue_full": 0}

    records = list(store.audit.records())
    assert [r.request_id for r in records] == ["req-1", "req-2", "req-3", "req-4"]
    assert len(records[1].action) == 128 and records[1].action.startswith(LONG_PATH[:120])
    assert len(records[1].source) == 64
    report = store.audit.verify()
    assert report.ok and report.checked == 4, report.reason


def test_a_path_with_a_nul_is_written(store: Store) -> None:
    """ASGI paths are percent-decoded: %00 reaches the store as NUL, which PostgreSQL text refuses."""
    log = UsageLog(store.usage, audit=store.audit)
    log.record(usage(1, "/v1/completions\x00x"))
    asyncio.run(log.flush())
    assert rows(store)[0][1] == "/v1/completions\ufffdx"
    assert store.audit.verify().ok


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_request_the_database_refuses_is_set_aside_counted_and_the_others_written(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses a kept request text holding NUL (the texts are stored as sent, so they
    are not rewritten): that request alone is set aside, logged without its text, and counted."""
    secret = "SECRET-PROMPT-TEXT"
    log = UsageLog(store.usage, audit=store.audit, texts=store.texts)
    log.record(usage(1), text(1, "fine"))
    log.record(usage(2), text(2, f"{secret}\x00"))
    log.record(usage(3), text(3, "fine too"))
    asyncio.run(log.flush())
    log.record(usage(4))
    asyncio.run(log.flush())

    assert [r[0] for r in rows(store)] == ["req-1", "req-3", "req-4"]
    assert store.texts.count() == 2
    assert log.write_failures == 1 and log.dropped["rejected"] == 1 and log.pending == 0
    assert "req-2" in caplog.text and "set aside" in caplog.text and secret not in caplog.text
    assert store.audit.verify().ok

    registry = CollectorRegistry()
    registry.register(ControlCollector(store, RoutingTable(), dict, log))
    page = generate_latest(registry).decode()
    assert "modelport_usage_write_failures_total 1.0" in page
    assert 'modelport_usage_records_dropped_total{reason="rejected"} 1.0' in page
    assert "modelport_usage_records_pending 0.0" in page


def test_while_the_store_cannot_take_records_the_queue_is_bounded_and_drops_are_counted(
    store: Store,
) -> None:
    """The table is gone (a real database error, not a stand-in): records wait, at most
    `max_pending` of them, the oldest dropped; once the table is back the rest are written."""
    with store.engine.begin() as conn:
        conn.execute(tables.usage_records.delete())
    tables.usage_records.drop(store.engine)
    log = UsageLog(store.usage, audit=store.audit, max_pending=3)
    for i in range(1, 6):
        log.record(usage(i))
    asyncio.run(log.flush())
    assert log.pending == 3 and log.dropped == {"rejected": 0, "queue_full": 2}
    assert log.write_failures == 1

    tables.usage_records.create(store.engine)
    asyncio.run(log.flush())
    assert [r[0] for r in rows(store)] == ["req-3", "req-4", "req-5"]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.audit_records)).scalar_one() == 3
    assert store.audit.verify().ok
