"""Usage records' units (audio seconds, images, documents, pixels) on real SQLite and PostgreSQL:
written through the usage log with their audit records, summed per endpoint and per key, and the
0007 migration over a store that already holds records."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select

from modelport.observe.usage_log import UsageLog
from modelport.store import tables
from modelport.store.records import UsageRecord
from modelport.store.repository import MIGRATIONS, Store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def usage(i: int, units: dict[str, float] | None, endpoint: str = "asr", key: str = "k1") -> UsageRecord:
    return UsageRecord(request_id=f"req-{i}", key_id=key, namespace="default", endpoint=endpoint,
                       served_by=endpoint, policy=None, replica_id="r1", path="/", status=200,
                       prompt_tokens=0, completion_tokens=0, latency_ms=12.5, first_byte_ms=3.0,
                       started_at=T0 + timedelta(seconds=i), units=units)  # fmt: skip


def test_units_are_written_summed_per_endpoint_and_key_and_audited(store: Store) -> None:
    log = UsageLog(store.usage, audit=store.audit, texts=store.texts)
    log.record(usage(1, {"audio_seconds": 3.25}))
    log.record(usage(2, {"audio_seconds": 1.5, "documents": 2}))
    log.record(usage(3, None))  # a token-only request: NULL, not JSON null
    log.record(usage(4, {"images": 1, "pixels": 262144}, endpoint="vision", key="k2"))
    asyncio.run(log.flush())
    assert log.dropped == {"rejected": 0, "queue_full": 0}

    t = tables.usage_records
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(t.c.request_id, t.c.units).order_by(t.c.id)).all())
        nulls = conn.execute(select(t.c.request_id).where(t.c.units.is_(None))).scalars().all()
    assert stored["req-1"] == {"audio_seconds": 3.25}
    assert stored["req-3"] is None and nulls == ["req-3"]

    by_endpoint = {row["endpoint"]: row for row in store.usage.totals("endpoint", None, None)}
    assert by_endpoint["asr"]["units"] == {"audio_seconds": 4.75, "documents": 2.0}
    assert by_endpoint["asr"]["requests"] == 3
    assert by_endpoint["vision"]["units"] == {"images": 1.0, "pixels": 262144.0}
    by_key = {row["key_id"]: row["units"] for row in store.usage.totals("key", None, None)}
    assert by_key == {"k1": by_endpoint["asr"]["units"], "k2": by_endpoint["vision"]["units"]}
    # the window applies to units as to the counts
    late = store.usage.totals("endpoint", T0 + timedelta(seconds=2), None)
    assert {r["endpoint"]: r["units"] for r in late} == {
        "asr": {"audio_seconds": 1.5, "documents": 2.0},
        "vision": {"images": 1.0, "pixels": 262144.0},
    }

    details = {r.request_id: json.loads(r.detail) for r in store.audit.records()}
    assert details["req-1"]["units"] == {"audio_seconds": 3.25} and "units" not in details["req-3"]
    report = store.audit.verify()
    assert report.ok and report.checked == 4, report.reason


def test_migration_0007_adds_units_to_a_store_that_has_records(store_url: str) -> None:
    engine = create_engine(store_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        connection.exec_driver_sql(
            "INSERT INTO usage_records (request_id, namespace, endpoint, served_by, path, status, "
            "prompt_tokens, completion_tokens, latency_ms, started_at) "
            "VALUES ('old', 'default', 'chat', 'chat', '/', 200, 1, 2, 1.0, '2026-12-01 09:00:00+00:00')"
        )
    engine.dispose()
    store = Store.open(store_url)  # migrates to head
    try:
        store.usage.add([usage(1, {"images": 2})])
        rows = {r["endpoint"]: r for r in store.usage.totals("endpoint", None, None)}
        assert rows["chat"]["units"] == {} and rows["chat"]["prompt_tokens"] == 1
        assert rows["asr"]["units"] == {"images": 2.0}
    finally:
        store.close()
    engine = create_engine(store_url)
    with engine.begin() as connection:  # and back down: the column goes, the rows stay
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
        assert connection.exec_driver_sql("SELECT count(*) FROM usage_records").scalar() == 2
    engine.dispose()
