"""A replica that was ready and then stops answering its health route is replaced.

The server (tests/support/custom_app.py --fault-route) keeps its process up but turns its /health to 503,
or makes it hang, as an engine whose loop died or hung would. The control plane takes it out of
routing at the first failed probe, kills it after a few, and restarts it in place; a request
sent meanwhile is held only until the new process is ready, and that one answers it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from modelport import Client
from modelport.runtime.local import replica_identity
from tests.support.control_plane_process import ControlPlaneProcess

APP = str(Path(__file__).resolve().parents[1] / "support" / "custom_app.py")


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    data = tmp_path_factory.mktemp("unhealthy") / "data"
    env = {"MODELPORT_ALLOW_CUSTOM_COMMANDS": "1"}  # custom commands are off unless turned on
    with ControlPlaneProcess(data, None, "--no-demo", env=env) as control_plane:
        yield control_plane


def replica_process(cp: ControlPlaneProcess, replica_id: str) -> psutil.Process:
    for proc in psutil.process_iter():
        try:
            if replica_identity(proc).get("MODELPORT_REPLICA_ID") == replica_id:
                return proc
        except psutil.Error:
            continue
    raise AssertionError(f"no process for replica {replica_id}")


def replicas(cp: ControlPlaneProcess, name: str) -> list[dict[str, object]]:
    status = cp.endpoint(name)["status"]
    assert isinstance(status, dict)
    return list(status["replicas"])


@pytest.mark.parametrize("fault", ["503", "hang"])
def test_a_replica_that_turns_unhealthy_after_ready_is_replaced(
    cp: ControlPlaneProcess, tiny_model: Path, fault: str
) -> None:
    name = f"turns-{fault}"
    command = [sys.executable, APP, "--port", "{port}", "--name", "{name}", "--fault-route"]
    image = {"custom": {"command": command, "healthRoute": "/health"}}
    ep = Client(cp.url, token=cp.token).create_endpoint(name, model=str(tiny_model), image=image)
    cp.wait_for(name, "running", timeout=60, ready=1)
    [record] = replicas(cp, name)
    old = replica_process(cp, str(record["id"]))
    port = old.cmdline()[old.cmdline().index("--port") + 1]
    httpx.post(f"http://127.0.0.1:{port}/fault", params={"health": fault}, timeout=5).raise_for_status()
    faulted_at = time.monotonic()

    # out of routing at the first failed probe (a hung probe takes its 2 s timeout to fail)
    while cp.endpoint(name)["status"]["readyReplica"] != 0:  # type: ignore[index]
        assert time.monotonic() - faulted_at < 10, cp.log_tail()
        time.sleep(0.05)
    # a request now is held until the replacement is ready, and the replacement answers it
    sent_at = time.monotonic()
    reply = httpx.post(
        f"{ep.url}/v1/chat/completions",
        headers=cp.headers,
        json={"model": name, "messages": [{"role": "user", "content": "still here"}]},
        timeout=30,
    )
    held_s = time.monotonic() - sent_at
    print(f"{fault}: held {held_s:.1f} s; served again {time.monotonic() - faulted_at:.1f} s after the fault")
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "still here"
    assert int(reply.headers["x-served-by"]) != old.pid
    assert held_s < 15, f"held {held_s:.1f} s"

    [record] = replicas(cp, name)
    assert record["phase"] == "ready" and record["restarts"] == 1, record
    assert "unhealthy after ready" in str(record["lastError"]), record
    assert "failed probes" in cp.log_tail(200)
    assert not old.is_running() or old.status() == psutil.STATUS_ZOMBIE  # the old process was killed
    ep.delete()


def chat(cp: ControlPlaneProcess, url: str, max_tokens: int, timeout: float = 60) -> httpx.Response:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    return httpx.post(f"{url}/v1/chat/completions", headers=cp.headers, json=body, timeout=timeout)


def test_a_builtin_replica_whose_engine_loop_dies_is_replaced(
    cp: ControlPlaneProcess, tiny_model: Path
) -> None:
    """modelport's own engine, its loop made to raise at its 20th step (test-only fault injection):
    the replica stops serving, and a new process serves the next request."""
    ep = Client(cp.url, token=cp.token).create_endpoint(
        "crashes", model=str(tiny_model), env={"MODELPORT_TEST_FAIL_ENGINE_AFTER_STEPS": "20"}
    )
    cp.wait_for("crashes", "running", timeout=120, ready=1)
    [record] = replicas(cp, "crashes")
    old = replica_process(cp, str(record["id"]))
    assert chat(cp, ep.url, max_tokens=8).status_code == 200  # at most 8 steps
    chat(cp, ep.url, max_tokens=16)  # the loop raises during this one
    failed_at = time.monotonic()
    while (status := cp.endpoint("crashes")["status"])["readyReplica"] != 0:  # type: ignore[index]
        assert time.monotonic() - failed_at < 10, status
        if replicas(cp, "crashes")[0]["restarts"] == 1:  # already back
            break
        time.sleep(0.05)
    sent_at = time.monotonic()
    reply = chat(cp, ep.url, max_tokens=8)
    held_s = time.monotonic() - sent_at
    print(f"builtin: held {held_s:.1f} s; served again {time.monotonic() - failed_at:.1f} s after the crash")
    assert reply.status_code == 200, reply.text
    [record] = replicas(cp, "crashes")
    assert record["phase"] == "ready" and record["restarts"] == 1, record
    assert replica_process(cp, str(record["id"])).pid != old.pid
    assert held_s < 45, f"held {held_s:.1f} s"
    ep.delete()
