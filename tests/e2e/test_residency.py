"""Data residency on a real `modelport up` with a region and an allowed-hosts list: endpoints are
placed only in the installation's region and only from allowed hosts (refusals are audited),
pulls to other hosts are refused before any connection, replicas run with telemetry off, and
`modelport doctor --residency` lists every destination."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.control_plane_process import ControlPlaneProcess, replica_processes

pytestmark = pytest.mark.timeout(600)

RESIDENCY = {"MODELPORT_REGION": "eu-west-1", "MODELPORT_ALLOWED_HOSTS": "hf-mirror.eu.internal"}


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    wide = {"COLUMNS": "300", "HF_HUB_OFFLINE": "0"}  # one line per message; online, so a refusal is ours
    env = {**os.environ, **RESIDENCY, "MODELPORT_DATA_DIR": str(data), **wide}
    return subprocess.run([sys.executable, "-m", "modelport.cli.main", *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def last_errors(cp: ControlPlaneProcess, name: str) -> list[str]:
    status = cp.endpoint(name)["status"]
    assert isinstance(status, dict)
    return [r["lastError"] or "" for r in status["replicas"]]


def test_placement_egress_and_telemetry_follow_the_installation(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "data"
    env = {**RESIDENCY, "MODELPORT_REPLICA_PRELOAD": "0"}  # a plain spawn: its environ is readable
    with ControlPlaneProcess(data, None, "--no-demo", env=env) as cp:
        local = {"name": "chat", "model": {"repository": str(tiny_model), "env": {"DO_NOT_TRACK": "0"}}}
        assert cp.api("POST", "/v2/endpoint/default", json=local).status_code == 201
        assert cp.endpoint("chat")["provider"]["region"] == "eu-west-1"  # the installation's, by default

        us = {**local, "name": "us", "provider": {"region": "us-east-1"}}
        elsewhere = cp.api("POST", "/v2/endpoint/default", json=us)
        assert elsewhere.status_code == 422
        assert elsewhere.json()["field"] == "provider.region" and "'eu-west-1'" in elsewhere.json()["error"]
        moved = cp.api("PUT", "/v2/endpoint/default/chat", json={"provider": {"region": "us-east-1"}})
        assert moved.status_code == 422

        hub_body = {"name": "hub", "model": {"repository": "acme/chat"}}
        hub = cp.api("POST", "/v2/endpoint/default", json=hub_body)
        assert hub.status_code == 422 and "huggingface.co" in hub.json()["error"]
        mirror = {"HF_ENDPOINT": "https://hf-mirror.eu.internal"}  # an allowed host: accepted
        mirrored = {"name": "mirrored", "model": {"repository": "acme/chat", "env": mirror},
                    "compute": {"scaling": {"minReplica": 0}}}  # fmt: skip
        accepted = cp.api("POST", "/v2/endpoint/default", json=mirrored)
        assert accepted.status_code == 201, accepted.text

        cp.wait_for("chat", "running", timeout=180)
        (replica,) = [p for p in replica_processes(data) if "chat" in p.cmdline()]
        replica_env = replica.environ()
        assert replica_env["DO_NOT_TRACK"] == "1"  # the endpoint's 0 does not turn telemetry on
        assert replica_env["VLLM_NO_USAGE_STATS"] == "1" and replica_env["HF_HUB_DISABLE_TELEMETRY"] == "1"

    exported = [json.loads(line) for line in cli(data, "audit", "export").stdout.splitlines()]
    refusals = [r for r in exported if r["detail"]["status"] == 422]
    assert len(refusals) >= 3
    assert any("not an allowed host" in (r["detail"]["error"] or "") for r in refusals)
    assert any("placement refused" in (r["detail"]["error"] or "") for r in refusals)

    pulled = cli(data, "models", "pull", "acme/chat")
    assert pulled.returncode != 0 and "not an allowed host" in pulled.stdout + pulled.stderr

    doctor = cli(data, "doctor", "--residency", "--json")
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["region"] == "eu-west-1" and report["allowed_hosts"] == ["hf-mirror.eu.internal"]
    assert report["telemetry"]["replica_environment"]["VLLM_NO_USAGE_STATS"] == "1"
    mirror_host = {"host": "hf-mirror.eu.internal", "used_by": ["default/mirrored"], "allowed": True}
    assert report["destinations"] == [mirror_host]  # the local folder is fetched from nowhere
    table = cli(data, "doctor", "--residency")
    assert "eu-west-1" in table.stdout and "hf-mirror.eu.internal" in table.stdout

    # restarted in another region: the local endpoint (at one replica) may no longer run here, so
    # each launch is refused before anything starts, and audited
    moved = {**RESIDENCY, "MODELPORT_REGION": "eu-central-1"}
    with ControlPlaneProcess(data, None, "--no-demo", env=moved) as cp:
        deadline = time.monotonic() + 60
        while not any("placement refused" in error for error in last_errors(cp, "chat")):
            assert time.monotonic() < deadline, cp.endpoint("chat")["status"]
            time.sleep(0.3)
        assert not [p for p in replica_processes(data) if "chat" in p.cmdline()]
    exported = [json.loads(line) for line in cli(data, "audit", "export").stdout.splitlines()]
    launches = [r for r in exported if r["kind"] == "residency"]
    assert {(r["actor"], r["action"]) for r in launches} == {("control-plane", "launch replica")}
    # `mirrored` (whose pulls fail) is refused too when it had not yet failed its three starts
    # before the restart: that depends on how fast this machine is
    assert "default/chat" in {r["target"] for r in launches} <= {"default/chat", "default/mirrored"}
    assert all("region 'eu-central-1'" in r["detail"]["refused"] for r in launches)
    assert cli(data, "audit", "verify").returncode == 0
