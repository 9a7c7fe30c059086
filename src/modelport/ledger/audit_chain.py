"""The audit trail's hash chain, as pure functions: how a record is hashed, and how a run of
stored records is verified.

Each record's hash is SHA-256 over the previous record's hash and the record's own fields in
a canonical JSON form (its sequence number included, so a deleted or reordered record breaks
the chain as surely as an edited one). Every field is stored as the exact string that was
hashed, so verifying needs no re-serialisation that a database could change. Purging old
records keeps an anchor (the last purged record's sequence number and hash): the first kept
record must link to it, so a purged log still verifies from there on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64  # what the first record of a new log links to


@dataclass(frozen=True)
class AuditEntry:
    """One audited event, before it is chained. Never any prompt or completion text."""

    # "admin" (an API call that changes something), "inference" (one request's metadata) or
    # "residency" (a replica launch the control plane refused for its region or model source)
    kind: str
    actor: str  # the API key id, or "admin-token"; "anonymous" for a refused caller
    action: str  # e.g. "PUT /v2/endpoint/{namespace}/{name}" or "POST /v1/chat/completions"
    target: str  # what it acted on, e.g. "default/chat" or "key:mp_abc"
    at: str  # ISO 8601 UTC with microseconds
    source: str = ""  # the caller's address
    request_id: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)  # status, diff, tokens, latency...


@dataclass(frozen=True)
class StoredAudit:
    """A record as stored: the entry's fields as strings, its place in the chain, its hashes."""

    seq: int
    at: str
    kind: str
    actor: str
    action: str
    target: str
    source: str
    request_id: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    anchor_seq: int  # records up to this one were purged (0: none)
    first_bad_seq: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "anchor_seq": self.anchor_seq,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


def timestamp(moment: datetime) -> str:
    """The stored form of a time: UTC, microseconds, so that the strings sort as the times do."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_detail(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def text_digest(request_id: str, request: str, completion: str) -> str:
    """SHA-256 of a request's kept texts (the stored strings) and its id, as its audit record holds it."""
    body = json.dumps([request_id, request, completion], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()


def record_hash(prev_hash: str, seq: int, at: str, kind: str, actor: str, action: str, target: str,
                source: str, request_id: str, detail: str) -> str:  # fmt: skip
    fields = [seq, at, kind, actor, action, target, source, request_id, detail]
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def chain(entries: Iterable[AuditEntry], last_seq: int, last_hash: str) -> list[StoredAudit]:
    """The entries as stored records, linked after the record (`last_seq`, `last_hash`)."""
    out = []
    seq, prev = last_seq, last_hash
    for e in entries:
        seq += 1
        detail = canonical_detail(e.detail)
        fields = (e.at, e.kind, e.actor, e.action, e.target, e.source, e.request_id, detail)
        digest = record_hash(prev, seq, *fields)
        out.append(StoredAudit(seq, *fields, prev, digest))
        prev = digest
    return out


def verify(
    records: Iterable[StoredAudit],
    anchor_seq: int = 0,
    anchor_hash: str = GENESIS,
    text_digests: set[str] | None = None,
) -> VerifyReport:
    """Check every record, in sequence order, from the anchor on; name the first that fails.
    `text_digests`, if given, collects the kept-text digests that verified records hold (what
    `verify_texts` checks kept texts against), in the same pass."""
    seq, prev, checked = anchor_seq, anchor_hash, 0
    for r in records:
        bad = None
        if r.seq != seq + 1:
            bad = f"record {seq + 1} is missing (the next one stored is {r.seq})"
        elif r.prev_hash != prev:
            bad = f"record {r.seq} does not link to record {seq}'s hash"
        else:
            fields = (r.at, r.kind, r.actor, r.action, r.target, r.source, r.request_id, r.detail)
            if record_hash(r.prev_hash, r.seq, *fields) != r.hash:
                bad = f"record {r.seq} was changed after it was written (its hash does not match its fields)"
        if bad is not None:
            return VerifyReport(False, checked, anchor_seq, seq + 1, bad)
        seq, prev, checked = r.seq, r.hash, checked + 1
        if text_digests is not None and (digest := _text_digest_in(r)) is not None:
            text_digests.add(digest)
    return VerifyReport(True, checked, anchor_seq)


def verify_texts(texts: Iterable[tuple[str, str, str, str]], recorded: set[str]) -> tuple[int, str | None]:
    """Check kept request texts, given as (request id, request, completion, stored digest),
    against the digests the verified audit records hold: (texts checked, the first problem)."""
    checked = 0
    for request_id, request, completion, digest in texts:
        if text_digest(request_id, request, completion) != digest:
            return checked, f"the kept text of request {request_id} was changed after it was written"
        if digest not in recorded:
            return checked, f"the kept text of request {request_id} has no audit record holding its digest"
        checked += 1
    return checked, None


def _text_digest_in(record: StoredAudit) -> str | None:
    """The kept-text digest an inference record holds, if any."""
    if record.kind != "inference" or '"text":{' not in record.detail:
        return None
    text = json.loads(record.detail).get("text")
    digest = text.get("sha256") if isinstance(text, dict) else None
    return digest if isinstance(digest, str) else None


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an admin action changed: {dotted path: {"before": x, "after": y}} for each leaf that
    differs (a whole side is None for a create or a delete)."""
    flat_before, flat_after = _flatten(before or {}), _flatten(after or {})
    out: dict[str, Any] = {}
    for path in sorted(set(flat_before) | set(flat_after)):
        old, new = flat_before.get(path), flat_after.get(path)
        if old != new:
            out[path] = {"before": old, "after": new}
    return out


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            out.update(_flatten(item, f"{path}."))
        else:
            out[path] = item
    return out
