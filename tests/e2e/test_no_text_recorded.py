"""With default settings, no prompt or completion text reaches any file the installation writes
(logs, the store, the audit trail, replica logs), any metric, or the audit export: a unique
marker is sent in prompts through every route and looked for, byte for byte, everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.control_plane_process import ControlPlaneProcess

pytestmark = pytest.mark.timeout(600)


def test_a_marker_sent_in_prompts_is_found_nowhere(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "data"
    marker = f"PROMPT-MARKER-{uuid.uuid4().hex}"
    completions: list[str] = []
    with ControlPlaneProcess(data, None, "--no-demo") as cp:
        body = {"name": "chat", "model": {"repository": str(tiny_model)}}
        assert cp.api("POST", "/v2/endpoint/default", json=body).status_code == 201
        cp.wait_for("chat", "running", timeout=180)
        key = cp.api("POST", "/v2/keys", json={"name": "app"}).json()["key"]
        base = f"{cp.url}/endpoints/default/chat"
        auth = {"authorization": f"Bearer {key}"}
        with httpx.Client(timeout=60, headers=auth) as client:
            chat = {"model": "chat", "messages": [{"role": "user", "content": marker}], "max_tokens": 24}
            answer = client.post(f"{base}/v1/chat/completions", json=chat)
            assert answer.status_code == 200
            completions.append(answer.json()["choices"][0]["message"]["content"])
            text = client.post(
                f"{base}/v1/completions", json={"model": "chat", "prompt": marker, "max_tokens": 24}
            )
            completions.append(text.json()["choices"][0]["text"])
            with client.stream(
                "POST", f"{base}/v1/chat/completions", json={**chat, "stream": True}
            ) as stream:
                streamed = "".join(
                    json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                    for line in stream.iter_lines()
                    if line.startswith("data: {") and '"choices":[{' in line.replace(" ", "")
                )
            completions.append(streamed)
            tgi = client.post(
                f"{base}/generate", json={"inputs": marker, "parameters": {"max_new_tokens": 24}}
            )
            assert tgi.status_code == 200
            completions.append(tgi.json()["generated_text"])
            # refused and failing requests carry the marker too
            bad = client.post(
                f"{base}/v1/completions", json={"model": "chat", "prompt": marker, "max_tokens": -3}
            )
            assert bad.status_code == 400
            unauthorised = httpx.post(f"{base}/v1/completions", json={"prompt": marker}, timeout=30)
            assert unauthorised.status_code == 401
            long_prompt = {"model": "chat", "prompt": f"{marker} " * 4000, "max_tokens": 1}
            too_long = client.post(f"{base}/v1/completions", json=long_prompt)
            assert too_long.status_code == 400
        metrics = [cp.api("GET", "/metrics").text]
        replica_port = None
        for log in (data / "replicas").glob("*.log"):
            for row in log.read_text(errors="replace").splitlines():
                if "Uvicorn running on http://127.0.0.1:" in row:
                    replica_port = row.rsplit(":", 1)[1].split()[0]
        assert replica_port is not None
        metrics.append(httpx.get(f"http://127.0.0.1:{replica_port}/metrics", timeout=10).text)
        time.sleep(2)  # the usage log (and its audit lines) is written every second
    exported = subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "audit", "export"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "MODELPORT_DATA_DIR": str(data)},
    ).stdout  # fmt: skip
    assert exported.count('"kind": "inference"') >= 6

    # a completion long and varied enough to be unmistakable (the random model may answer a run
    # of zeros, which the audit chain's first link holds)
    needles = [marker.encode()] + [
        c.strip().encode() for c in completions if len(c.strip()) >= 24 and len(set(c.strip())) >= 8
    ]
    assert len(needles) >= 2, completions  # at least one completion is long enough to be unmistakable
    written = [p for p in tmp_path.rglob("*") if p.is_file()]  # the data dir, logs, store and its WAL
    assert any(p.name == "modelport.db" for p in written)
    for path in written:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"{needle[:40]!r} found in {path}"
    for text in [*metrics, exported]:
        for needle in needles:
            assert needle.decode() not in text
