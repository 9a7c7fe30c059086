"""The audit trail of a real `modelport up`: admin calls (who, what, before/after, from where,
request id) and every inference request's metadata are chained; `modelport audit verify`
passes on the untouched store and names the first record whose stored bytes were changed;
`modelport audit export` windows by time; nothing of a prompt or a key's secret is recorded."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.control_plane_process import ControlPlaneProcess, audit_cli

pytestmark = pytest.mark.timeout(600)


def export(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    done = audit_cli(data_dir, "export", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_admin_calls_and_requests_are_chained_verified_and_tampering_is_named(
    tmp_path: Path, tiny_model: Path
) -> None:
    data = tmp_path / "data"
    marker = f"AUDIT-MARKER-{uuid.uuid4().hex}"
    started = datetime.now(UTC)
    with ControlPlaneProcess(data, None, "--no-demo") as cp:
        body = {"name": "chat", "model": {"repository": str(tiny_model)},
                "compute": {"scaling": {"minReplica": 1, "maxReplica": 1}}}  # fmt: skip
        created = httpx.post(f"{cp.url}/v2/endpoint/default", json=body, timeout=30,
                             headers={**cp.headers, "x-request-id": "create-chat-1"})  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == "create-chat-1"
        cp.wait_for("chat", "running", timeout=180)
        updated = cp.api("PUT", "/v2/endpoint/default/chat", json={"compute": {"scaling": {"maxReplica": 2}}})
        assert updated.status_code == 200, updated.text
        key = cp.api("POST", "/v2/keys", json={"name": "auditor", "scopes": ["inference"]}).json()
        refused = httpx.post(
            f"{cp.url}/v2/endpoint/default/chat/pause", headers={"authorization": "Bearer nope"}
        )
        assert refused.status_code == 401

        tokens = []
        for i in range(5):
            answer = httpx.post(
                f"{cp.url}/endpoints/default/chat/v1/completions",
                headers={"authorization": f"Bearer {key['key']}"},
                json={"model": "chat", "prompt": f"{marker} number {i}", "max_tokens": 3 + i},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            tokens.append(
                (answer.json()["usage"]["prompt_tokens"], answer.json()["usage"]["completion_tokens"])
            )
        assert cp.api("DELETE", f"/v2/keys/{key['id']}").status_code == 200
    # the control plane has stopped: every usage record (and its audit line) is written

    verified = audit_cli(data, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    records = export(data)
    assert "verified" in verified.stdout and f"{len(records)} records" in verified.stdout

    admin = [r for r in records if r["kind"] == "admin"]
    by_action = {(r["action"], r["detail"]["status"]): r for r in admin}
    create = by_action[("POST /v2/endpoint/{namespace}", 201)]
    assert create["target"] == "default/chat" and create["request_id"] == "create-chat-1"
    assert create["actor"] == "admin-token" and create["source"] == "127.0.0.1"
    assert create["detail"]["changes"]["name"] == {"before": None, "after": "chat"}
    update = by_action[("PUT /v2/endpoint/{namespace}/{name}", 200)]
    assert update["detail"]["changes"]["compute.scaling.maxReplica"] == {"before": 1, "after": 2}
    key_made = by_action[("POST /v2/keys", 201)]
    assert key_made["target"] == f"key:{key['id']}"
    assert key_made["detail"]["changes"]["name"] == {"before": None, "after": "auditor"}
    assert by_action[("DELETE /v2/keys/{id}", 200)]["detail"]["changes"]["status"]["after"] == "revoked"
    denied = by_action[("POST /v2/endpoint/{namespace}/{name}/pause", 401)]
    assert denied["actor"] == "anonymous" and denied["detail"]["changes"] == {}

    inference = [r for r in records if r["kind"] == "inference"]
    assert len(inference) == 5
    assert {r["actor"] for r in inference} == {key["id"]}
    assert {(r["source"], r["detail"]["model"]) for r in inference} == {("127.0.0.1", str(tiny_model))}
    assert all("revision" in r["detail"] and "text" not in r["detail"] for r in inference)
    counted = sorted((r["detail"]["prompt_tokens"], r["detail"]["completion_tokens"]) for r in inference)
    assert counted == sorted(tokens)

    exported = "\n".join(json.dumps(r) for r in records)
    assert marker not in exported and key["key"] not in exported
    secret = key["key"].rsplit("_", 1)[-1]
    assert secret not in exported

    # a time window: only what happened in it
    assert export(data, "--to", (started - timedelta(minutes=1)).isoformat()) == []
    assert len(export(data, "--from", started.isoformat())) == len(records)

    # one byte of one stored record changed: verify fails and names it
    victim = inference[2]["seq"]
    with sqlite3.connect(data / "modelport.db") as db:
        (detail,) = db.execute("SELECT detail FROM audit_records WHERE seq = ?", (victim,)).fetchone()
        changed = detail.replace('"status":200', '"status":204')
        assert changed != detail and len(changed) == len(detail)
        db.execute("UPDATE audit_records SET detail = ? WHERE seq = ?", (changed, victim))
    broken = audit_cli(data, "verify")
    assert broken.returncode == 1
    assert f"record {victim}" in broken.stderr
    as_json = json.loads(audit_cli(data, "verify", "--json").stdout)
    assert as_json["ok"] is False and as_json["first_bad_seq"] == victim


def test_purge_by_age_keeps_the_trail_verifiable(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "data"
    body = {"model": {"repository": str(tiny_model)}, "compute": {"scaling": {"minReplica": 0}}}
    with ControlPlaneProcess(data, None, "--no-demo") as cp:
        assert cp.api("POST", "/v2/endpoint/default", json={"name": "one", **body}).status_code == 201
    old = export(data)
    time.sleep(1.5)
    purged = audit_cli(data, "purge", "--older-than", "1", "--json")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["deleted"] == len(old)
    (purge,) = export(data)  # only the purge's own record is left, linked to the anchor
    assert purge["action"] == "audit purge" and purge["seq"] == old[-1]["seq"] + 1
    assert purge["prev_hash"] == old[-1]["hash"]
    verified = audit_cli(data, "verify")
    assert verified.returncode == 0 and f"after record {old[-1]['seq']}" in verified.stdout

    with ControlPlaneProcess(data, None, "--no-demo") as cp:  # new records chain on after a restart
        assert cp.api("POST", "/v2/endpoint/default", json={"name": "two", **body}).status_code == 201
    assert audit_cli(data, "verify").returncode == 0
    assert [r["target"] for r in export(data)][-1] == "default/two"
