"""An endpoint that opts in (traffic.recordText) keeps each request's body and completion for its
retention period, in the store only: `modelport audit export --with-text` shows them, the audit
records hold their digest so `modelport audit verify` proves them unchanged, and an endpoint of
the same installation that did not opt in keeps nothing."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.control_plane_process import ControlPlaneProcess, audit_cli

pytestmark = pytest.mark.timeout(600)


def test_opted_in_texts_are_kept_exported_verified_and_nowhere_else(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "data"
    kept_marker, plain_marker = (f"{tag}-{uuid.uuid4().hex}" for tag in ("KEPT", "PLAIN"))
    with ControlPlaneProcess(data, None, "--no-demo") as cp:
        for name, traffic in (("kept", {"recordText": {"retentionDays": 7}}), ("plain", {})):
            body = {"name": name, "model": {"repository": str(tiny_model)}, "traffic": traffic}
            created = cp.api("POST", "/v2/endpoint/default", json=body)
            assert created.status_code == 201, created.text
        assert cp.endpoint("kept")["traffic"]["recordText"] == {"retentionDays": 7.0}  # type: ignore[index]
        cp.wait_for("kept", "running", timeout=180)
        cp.wait_for("plain", "running", timeout=180)

        answers: dict[str, Any] = {}
        with httpx.Client(timeout=60, headers=cp.headers) as client:
            base = f"{cp.url}/endpoints/default"
            chat = {"model": "kept", "messages": [{"role": "user", "content": kept_marker}], "max_tokens": 12}
            one = client.post(
                f"{base}/kept/v1/chat/completions", json=chat, headers={"x-request-id": "kept-1"}
            )
            assert one.status_code == 200, one.text
            answers["kept-1"] = one.json()["choices"][0]["message"]["content"]
            with client.stream("POST", f"{base}/kept/v1/chat/completions", json={**chat, "stream": True},
                               headers={"x-request-id": "kept-2"}) as stream:  # fmt: skip
                events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
            answers["kept-2"] = "".join(
                e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")
            )
            tgi = client.post(f"{base}/kept/generate", headers={"x-request-id": "kept-3"},
                              json={"inputs": kept_marker, "parameters": {"max_new_tokens": 12}})  # fmt: skip
            assert tgi.status_code == 200, tgi.text
            answers["kept-3"] = tgi.json()["generated_text"]
            with_details = {"inputs": kept_marker, "parameters": {"max_new_tokens": 12, "details": True}}
            detailed = client.post(
                f"{base}/kept/generate", headers={"x-request-id": "kept-4"}, json=with_details
            )
            assert detailed.status_code == 200, detailed.text
            answers["kept-4"] = detailed.json()["generated_text"]
            generated = detailed.json()["details"]["generated_tokens"]
            plain = {**chat, "model": "plain", "messages": [{"role": "user", "content": plain_marker}]}
            other = client.post(
                f"{base}/plain/v1/chat/completions", json=plain, headers={"x-request-id": "plain-1"}
            )
            assert other.status_code == 200, other.text
            plain_completion = other.json()["choices"][0]["message"]["content"]
        time.sleep(2)  # the usage log (and its audit lines and texts) is written every second
    assert all(len(a) >= 8 for a in answers.values()), answers

    verified = audit_cli(data, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "4 kept request texts match their records" in verified.stdout

    exported = audit_cli(data, "export", "--with-text")
    assert exported.returncode == 0, exported.stderr
    inference = {
        r["request_id"]: r for r in map(json.loads, exported.stdout.splitlines()) if r["kind"] == "inference"
    }
    assert set(inference) == {"kept-1", "kept-2", "kept-3", "kept-4", "plain-1"}
    # TGI /generate without details is metered too (from the engine's x-*-tokens headers, as TGI sends)
    tokens = {i: (inference[i]["detail"]["prompt_tokens"], inference[i]["detail"]["completion_tokens"])
              for i in ("kept-3", "kept-4")}  # fmt: skip
    assert (
        tokens["kept-3"] == tokens["kept-4"] and tokens["kept-3"][0] > 0 and tokens["kept-3"][1] == generated
    )
    for request_id, completion in answers.items():
        record = inference[request_id]
        assert record["source"] == "127.0.0.1" and record["detail"]["model"] == str(tiny_model)
        assert kept_marker in record["text"]["request"]
        assert record["text"]["completion"] == [completion], (request_id, record["text"])
        assert kept_marker not in json.dumps(record["detail"])  # the record itself: only the digest
    assert "text" not in inference["plain-1"]["detail"] and "text" not in inference["plain-1"]
    without = audit_cli(data, "export").stdout
    assert kept_marker not in without and '"sha256"' in without

    # the texts are in the store only: no log, no replica log; the plain endpoint's nowhere at all
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        content = path.read_bytes()
        assert plain_marker.encode() not in content, path
        if len(plain_completion) >= 24:
            assert plain_completion.encode() not in content, path
        if path.suffix == ".log":
            assert kept_marker.encode() not in content, path

    # one byte of a kept completion changed in the database: verify names the request
    with sqlite3.connect(data / "modelport.db") as db:
        (completion,) = db.execute(
            "SELECT completion FROM request_texts WHERE request_id = 'kept-2'"
        ).fetchone()
        changed = completion[:-3] + ("x" if completion[-3] != "x" else "y") + completion[-2:]
        db.execute("UPDATE request_texts SET completion = ? WHERE request_id = 'kept-2'", (changed,))
    broken = audit_cli(data, "verify")
    assert broken.returncode == 1
    assert "the kept text of request kept-2 was changed after it was written" in broken.stderr
