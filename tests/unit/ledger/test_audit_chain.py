"""The audit trail's hash chain: records link and verify; any changed byte, a deleted or a
reordered record is found, and named; a purge anchor lets the rest verify."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelport.ledger.audit_chain import GENESIS, AuditEntry, chain, diff, timestamp, verify

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        kind="inference",
        actor=f"k{i % 3}",
        action="/v1/chat/completions",
        target="default/chat",
        at=timestamp(T0 + timedelta(seconds=i)),
        source="10.0.0.7",
        request_id=f"req-{i}",
        detail={"status": 200, "prompt_tokens": 10 + i, "completion_tokens": 5},
    )


def entries(n: int) -> list[AuditEntry]:
    return [entry(i) for i in range(n)]


def test_an_untouched_chain_verifies_and_links_from_genesis() -> None:
    records = chain(entries(5), 0, GENESIS)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    report = verify(records)
    assert report.ok and report.checked == 5 and report.first_bad_seq is None


def test_a_chain_continues_from_the_last_record() -> None:
    first = chain(entries(3), 0, GENESIS)
    more = chain(entries(2), first[-1].seq, first[-1].hash)
    assert verify([*first, *more]).ok


FIELDS = ["at", "kind", "actor", "action", "target", "source", "request_id", "detail"]


@pytest.mark.parametrize("field", FIELDS)
def test_one_changed_byte_in_any_field_names_that_record(field: str) -> None:
    records = chain(entries(6), 0, GENESIS)
    value = getattr(records[3], field)
    changed = value[:-1] + chr(ord(value[-1]) ^ 1)  # one bit of the last byte
    records[3] = dataclasses.replace(records[3], **{field: changed})
    report = verify(records)
    assert not report.ok and report.first_bad_seq == 4 and report.checked == 3
    assert "changed" in report.reason


def test_a_rewritten_hash_or_link_is_found() -> None:
    records = chain(entries(4), 0, GENESIS)
    records[1] = dataclasses.replace(records[1], hash="f" * 64)
    assert verify(records).first_bad_seq == 2
    relinked = chain(entries(4), 0, GENESIS)
    relinked[2] = dataclasses.replace(relinked[2], prev_hash="e" * 64)
    report = verify(relinked)
    assert report.first_bad_seq == 3 and "link" in report.reason


def test_a_deleted_or_reordered_record_is_found() -> None:
    records = chain(entries(5), 0, GENESIS)
    report = verify([r for r in records if r.seq != 3])
    assert not report.ok and report.first_bad_seq == 3 and "missing" in report.reason
    swapped = [records[0], records[2], records[1], *records[3:]]
    assert verify(swapped).first_bad_seq == 2


def test_after_a_purge_the_rest_verifies_from_the_anchor() -> None:
    records = chain(entries(6), 0, GENESIS)
    kept, last_purged = records[4:], records[3]
    assert not verify(kept).ok  # from genesis, the purged records are missing
    report = verify(kept, last_purged.seq, last_purged.hash)
    assert report.ok and report.checked == 2 and report.anchor_seq == 4
    assert not verify(kept, last_purged.seq, "0" * 64).ok  # a forged anchor does not link


def test_timestamps_are_utc_and_sort_as_times_do() -> None:
    cet = timezone(timedelta(hours=1))
    assert timestamp(datetime(2026, 12, 1, 10, 0, tzinfo=cet)) == "2026-12-01T09:00:00.000000Z"
    times = [T0 + timedelta(microseconds=7), T0 + timedelta(seconds=1), T0 + timedelta(days=40)]
    assert sorted(timestamp(t) for t in reversed(times)) == [timestamp(t) for t in times]


def test_diff_names_each_changed_leaf() -> None:
    before = {"name": "chat", "compute": {"scaling": {"minReplica": 0, "maxReplica": 1}}, "tags": []}
    after = {"name": "chat", "compute": {"scaling": {"minReplica": 1, "maxReplica": 1}}, "tags": ["eu"]}
    assert diff(before, after) == {
        "compute.scaling.minReplica": {"before": 0, "after": 1},
        "tags": {"before": [], "after": ["eu"]},
    }
    assert diff(None, {"name": "chat"}) == {"name": {"before": None, "after": "chat"}}
    assert diff({"name": "chat"}, None) == {"name": {"before": "chat", "after": None}}
    assert diff(before, before) == {}
