"""`modelport endpoints …` as a script would use it: JSON on stdout, documented exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.control_plane_process import ControlPlaneProcess
from tests.support.server_process import free_port


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("cli") / "data", None, "--no-demo") as control_plane:
        yield control_plane


def cli(cp: ControlPlaneProcess, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MODELPORT_URL": url or cp.url,
        "MODELPORT_DATA_DIR": str(cp.data_dir),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "endpoints", *args],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_full_cycle_from_the_cli(cp: ControlPlaneProcess, tiny_model: Path) -> None:
    created = cli(cp, "create", "cli-ep", "--model", str(tiny_model), "--engine-arg=--max-num-seqs",
                  "--engine-arg=4", "--env", "GREETING=hi", "--secret", "KEY=s3cret", "--json")  # fmt: skip
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["status"]["state"] == "running"
    assert body["model"]["args"] == ["--max-num-seqs", "4"]
    assert body["model"]["secrets"] == {"KEY": "***"}  # never echoed back

    table = cli(cp, "list")
    assert table.returncode == 0 and "cli-ep" in table.stdout and "running" in table.stdout
    described = cli(cp, "describe", "cli-ep")
    assert described.returncode == 0 and "1/1 ready" in described.stdout
    logs = cli(cp, "logs", "cli-ep", "--tail", "20", "--json")
    assert logs.returncode == 0 and json.loads(logs.stdout)["replicas"][0]["lines"]
    hardware = json.loads(cli(cp, "hardware", "--json").stdout)["items"]
    assert hardware[0]["accelerator"] == "cpu" and hardware[0]["numCpus"] >= 1

    paused = cli(cp, "pause", "cli-ep", "--json")
    assert json.loads(paused.stdout)["status"]["state"] == "paused"
    resumed = cli(cp, "resume", "cli-ep", "--json")
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["status"]["state"] == "running"
    events = json.loads(cli(cp, "events", "cli-ep", "--json").stdout)["items"]
    assert [(e["from"], e["to"], e["cause"]) for e in events] == [(1, 0, "user"), (0, 1, "user")]
    shown = cli(cp, "events", "cli-ep")
    assert shown.returncode == 0 and "paused by the user" in shown.stdout and "1 → 0" in shown.stdout

    tuned = cli(cp, "update", "cli-ep", "--min-replicas", "0", "--max-replicas", "2", "--target-pending", "3",
                "--scale-to-zero-after", "90m", "--stabilization", "2m", "--json")  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    scaling = json.loads(tuned.stdout)["compute"]["scaling"]
    assert scaling["measure"]["pendingRequests"] == 3.0
    assert (scaling["scaleToZeroTimeoutSeconds"], scaling["stabilizationWindowSeconds"]) == (5400, 120)
    described = cli(cp, "describe", "cli-ep")
    assert "3 pending request(s) per replica; scale down after 120 s calm; zero after 5400 s idle" in (
        described.stdout
    )
    bad = cli(cp, "update", "cli-ep", "--scale-to-zero-after", "soon")
    assert bad.returncode == 2 and "duration" in bad.stderr

    refused = cli(cp, "delete", "cli-ep")  # no terminal and no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert cli(cp, "delete", "cli-ep", "--yes").returncode == 0
    gone = cli(cp, "describe", "cli-ep")
    assert gone.returncode == 3 and "cli-ep" in gone.stderr


def test_exit_codes(cp: ControlPlaneProcess, tmp_path: Path) -> None:
    invalid = cli(cp, "create", "bad", "--model", str(tmp_path / "missing"), "--no-wait")
    assert invalid.returncode == 2 and "model.repository" in invalid.stderr
    assert cli(cp, "describe", "nope").returncode == 3
    down = cli(cp, "list", url=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 5 and "modelport up" in down.stderr
    wrong_token = cli(cp, "list", "--token", "wrong")
    assert wrong_token.returncode == 1 and "token" in wrong_token.stderr


def test_api_is_documented_and_guarded(cp: ControlPlaneProcess) -> None:
    schema = httpx.get(f"{cp.url}/openapi.json").json()
    assert "/v2/endpoint/{namespace}/{name}/scale-to-zero" in schema["paths"]
    assert httpx.get(f"{cp.url}/docs").status_code == 200
    refused = httpx.get(f"{cp.url}/v2/endpoint/default")
    assert refused.status_code == 401 and refused.json()["error_type"] == "unauthorized"
    token_file = cp.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert cp.log_path.read_text().count(cp.token) == 1  # printed once at creation, never logged again
    bad_json = httpx.post(f"{cp.url}/v2/endpoint/default", headers=cp.headers, content=b"{nope")
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]


def test_a_second_control_plane_on_the_same_store_is_refused(cp: ControlPlaneProcess) -> None:
    with pytest.raises(RuntimeError, match="another control plane is using"):
        ControlPlaneProcess(cp.data_dir, None, "--no-demo").start(timeout=60)


def test_embedding_endpoint_speaks_tei_and_openai(cp: ControlPlaneProcess, minilm_model: Path) -> None:
    from modelport import Client

    ep = Client(cp.url, token=cp.token).create_endpoint(
        "embed", model=str(minilm_model), task="feature-extraction"
    )
    ep.wait(timeout=120, poll_interval=0.3)
    tei = httpx.post(f"{ep.url}/embed", headers=cp.headers, json={"inputs": ["hello", "world"]})
    assert tei.status_code == 200 and [len(v) for v in tei.json()] == [384, 384]
    vectors = ep.openai().embeddings.create(model="embed", input="hello")
    assert len(vectors.data[0].embedding) == 384
    ep.delete()
