"""The audit trail in real SQLite and PostgreSQL: appends chain across batches and with usage
records in one transaction; export windows; purges that keep the rest verifiable; kept request
texts checked against their records' digests and deleted when they expire."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from modelport.ledger.audit_chain import (
    AuditEntry,
    text_digest,
    timestamp,
    verify_texts,
)
from modelport.observe.usage_log import audit_entry
from modelport.store import tables
from modelport.store.records import RequestText, UsageRecord
from modelport.store.repository import Store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def entry(i: int, kind: str = "admin") -> AuditEntry:
    return AuditEntry(kind=kind, actor="admin-token", action="PUT /v2/endpoint/{namespace}/{name}",
                      target="default/chat", at=timestamp(T0 + timedelta(minutes=i)), source="127.0.0.1",
                      request_id=f"r{i}", detail={"status": 200, "changes": {"min": [0, i]}})  # fmt: skip


def usage(i: int) -> UsageRecord:
    return UsageRecord(request_id=f"u{i}", key_id="abc123", namespace="default", endpoint="chat",
                       served_by="chat", policy=None, replica_id="rep1", path="/v1/completions", status=200,
                       prompt_tokens=7, completion_tokens=3 + i, latency_ms=12.5, first_byte_ms=3.25,
                       started_at=T0 + timedelta(minutes=i))  # fmt: skip


def test_batches_chain_on_and_verify(store: Store) -> None:
    store.audit.append([entry(0), entry(1)])
    store.audit.append([entry(2)])
    with store.engine.begin() as conn:  # as the usage log writes: usage and audit together
        batch = [usage(3), usage(4)]
        store.usage.add(batch, conn)
        store.audit.append([audit_entry(r) for r in batch], conn)
    records = list(store.audit.records())
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[3].kind == "inference" and '"completion_tokens":6' in records[3].detail
    report = store.audit.verify()
    assert report.ok and report.checked == 5


def test_one_changed_byte_in_the_database_is_named(store: Store) -> None:
    store.audit.append([entry(i) for i in range(6)])
    with store.engine.begin() as conn:
        t = tables.audit_records
        stored = conn.execute(select(t.c.detail).where(t.c.seq == 4)).scalar_one()
        changed = stored.replace('"status":200', '"status":201')  # one byte
        conn.execute(update(t).where(t.c.seq == 4).values(detail=changed))
    report = store.audit.verify()
    assert not report.ok and report.first_bad_seq == 4 and report.checked == 3


def test_export_windows_by_time(store: Store) -> None:
    store.audit.append([entry(i) for i in range(10)])
    window = list(store.audit.records(T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)))
    assert [r.request_id for r in window] == ["r3", "r4", "r5"]


def test_a_purge_keeps_the_rest_verifiable_and_new_records_link_on(store: Store) -> None:
    store.audit.append([entry(i) for i in range(10)])
    now = T0 + timedelta(days=1)
    assert store.audit.purge(T0 + timedelta(minutes=4), now) == 4
    assert store.audit.anchor()[0] == 4
    assert [r.seq for r in store.audit.records()][:1] == [5]
    assert store.audit.verify().ok
    assert store.audit.purge(T0 + timedelta(days=2), now) == 6  # everything
    assert store.audit.count() == 0 and store.audit.verify().ok
    store.audit.append([entry(20)])  # links to the anchor, not to genesis
    (record,) = store.audit.records()
    assert record.seq == 11
    report = store.audit.verify()
    assert report.ok and report.anchor_seq == 10


def test_a_purge_does_not_delete_evidence_of_tampering(store: Store) -> None:
    store.audit.append([entry(i) for i in range(6)])
    with store.engine.begin() as conn:
        t = tables.audit_records
        conn.execute(update(t).where(t.c.seq == 2).values(actor="someone"))
    with pytest.raises(ValueError, match="record 2"):
        store.audit.purge(T0 + timedelta(minutes=4), T0 + timedelta(days=1))
    assert store.audit.count() == 6


def test_retention_purges_usage_and_audit_by_age_and_records_the_purge(store: Store) -> None:
    from modelport.observe.retention import apply_retention

    store.usage.add([usage(i) for i in range(5)])  # started at T0 + i minutes
    store.audit.append([entry(i) for i in range(5)])
    now = T0 + timedelta(days=10, minutes=2, seconds=30)
    done = apply_retention(store, now, usage_days=10, audit_days=10)
    assert done == {"usage": 3, "audit": 3, "texts": 0}  # minutes 0, 1 and 2 are more than 10 days old
    assert sum(r["requests"] for r in store.usage.totals("endpoint", None, None)) == 2
    kept = list(store.audit.records())
    assert [r.request_id for r in kept[:2]] == ["r3", "r4"] and kept[-1].actor == "retention"
    assert store.audit.verify().ok
    nothing = {"usage": 0, "audit": 0, "texts": 0}
    assert apply_retention(store, now, usage_days=10, audit_days=10) == nothing
    assert store.audit.count() == 3  # nothing old left: no purge, and no record of one
    assert apply_retention(store, now, usage_days=0, audit_days=0) == nothing  # off


def kept_text(i: int, days: float, completion: str = '["four"]') -> RequestText:
    request = json.dumps({"messages": [{"role": "user", "content": f"question {i}"}]})
    at = T0 + timedelta(minutes=i)
    return RequestText(request_id=f"u{i}", namespace="default", endpoint="chat", at=at,
                       expires_at=at + timedelta(days=days), request=request, completion=completion,
                       digest=text_digest(f"u{i}", request, completion))  # fmt: skip


def check_texts(store: Store, now: datetime) -> tuple[int, str | None]:
    kept = ((t.request_id, t.request, t.completion, t.digest) for t in store.texts.kept(now))
    recorded: set[str] = set()
    assert store.audit.verify(recorded).ok
    return verify_texts(kept, recorded)


def test_kept_texts_are_written_with_their_records_verified_and_expire_on_their_own(store: Store) -> None:
    from modelport.observe.retention import apply_retention

    texts = {0: kept_text(0, days=1), 1: kept_text(1, days=30)}
    with store.engine.begin() as conn:  # as the usage log writes: usage, texts and audit together
        store.usage.add([usage(i) for i in range(3)], conn)
        store.texts.add(list(texts.values()), conn)
        store.audit.append([audit_entry(usage(i), texts.get(i)) for i in range(3)], conn)
    details = [json.loads(r.detail) for r in store.audit.records()]
    assert [d.get("text", {}).get("sha256") for d in details] == [texts[0].digest, texts[1].digest, None]
    assert "question" not in "".join(r.detail for r in store.audit.records())  # only the digest
    now = T0 + timedelta(hours=1)
    assert check_texts(store, now) == (2, None)
    assert set(store.texts.by_digest([texts[0].digest, texts[1].digest], now)) == {
        texts[0].digest,
        texts[1].digest,
    }

    # one byte of a kept completion changed: named; a text whose record is gone: named
    with store.engine.begin() as conn:
        t = tables.request_texts
        conn.execute(update(t).where(t.c.request_id == "u1").values(completion='["fivr"]'))
    assert check_texts(store, now) == (1, "the kept text of request u1 was changed after it was written")
    store.texts.add([kept_text(7, days=30)])
    with store.engine.begin() as conn:
        conn.execute(update(t).where(t.c.request_id == "u1").values(completion='["four"]'))
    assert check_texts(store, now) == (
        2,
        "the kept text of request u7 has no audit record holding its digest",
    )
    with store.engine.begin() as conn:
        conn.execute(tables.request_texts.delete().where(t.c.request_id == "u7"))

    # after a day the first has expired: not read, then deleted; the chain still verifies
    later = T0 + timedelta(days=2)
    assert [k.request_id for k in store.texts.kept(later)] == ["u1"]
    assert store.texts.by_digest([texts[0].digest], later) == {}
    assert apply_retention(store, later, usage_days=0, audit_days=0)["texts"] == 1
    assert store.texts.count() == 1 and store.audit.verify().ok and check_texts(store, later) == (1, None)
