"""Crashes and updates under load: a killed replica comes back, a SIGKILLed control plane
restarts with every endpoint and replica intact, and a rolling update fails no request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psutil

from modelport import Client
from tests.support.control_plane_process import ControlPlaneProcess, replica_processes


def ask(url: str, token: str, stream: bool = False) -> int:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": stream}
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    ) as response:
        text = response.read().decode()
        if response.status_code != 200:
            return response.status_code
        if stream and not text.rstrip().endswith("data: [DONE]"):
            return -1  # a stream cut short is a failure too
        return 200


def test_killed_replica_comes_back_and_status_says_why(tmp_path: Path, tiny_model: Path) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        ep = Client(cp.url, token=cp.token).create_endpoint("chat", model=str(tiny_model))
        ep.wait(timeout=120, poll_interval=0.3)
        [victim] = replica_processes(cp.data_dir)
        victim.kill()
        killed_at = time.monotonic()
        deadline = killed_at + 60
        while time.monotonic() < deadline:
            ep.fetch()
            if ep.state == "running" and ep.replicas[0].restarts == 1 and ep.ready_replicas == 1:
                break
            time.sleep(0.2)
        back_after = time.monotonic() - killed_at
        print(f"killed replica serving again after {back_after:.1f} s")
        assert ep.replicas[0].restarts == 1, ep.raw["status"]
        assert "exit code -9" in (ep.replicas[0].last_error or "")
        assert "restarted 1x" in ep.message
        assert ask(ep.url, cp.token) == 200
        assert back_after < 30
        [replacement] = replica_processes(cp.data_dir)
        assert replacement.pid != victim.pid


def test_sigkilled_control_plane_restarts_with_everything(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "data"
    first = ControlPlaneProcess(data, None, "--no-demo").start()
    port = first.port
    try:
        client = Client(first.url, token=first.token)
        for name in ("one", "two"):
            client.create_endpoint(name, model=str(tiny_model))
        for name in ("one", "two"):
            first.wait_for(name, "running")
        pids_before = sorted(p.pid for p in replica_processes(data))
        assert len(pids_before) == 2
        first.kill()
        # the replicas outlive the crash ...
        assert sorted(p.pid for p in replica_processes(data)) == pids_before
        second = ControlPlaneProcess(data, None, "--no-demo", port=port).start()
        try:
            # ... and are re-adopted, not duplicated or orphaned
            for name in ("one", "two"):
                described = second.wait_for(name, "running")
                assert ask(str(described["status"]["url"]), second.token) == 200  # type: ignore[index]
            assert sorted(p.pid for p in replica_processes(data)) == pids_before
        finally:
            second.stop()
        # a graceful stop takes the replicas down with it
        deadline = time.monotonic() + 60
        while replica_processes(data) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert replica_processes(data) == []
    finally:
        first.stop()
        for proc in replica_processes(data):
            proc.kill()


def test_update_under_load_fails_no_request(tmp_path: Path, tiny_model: Path) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        ep = Client(cp.url, token=cp.token).create_endpoint("busy", model=str(tiny_model))
        ep.wait(timeout=120, poll_interval=0.3)
        [old] = replica_processes(cp.data_dir)
        results: list[int] = []
        stop = threading.Event()

        def load(stream: bool) -> None:
            while not stop.is_set():
                try:
                    results.append(ask(ep.url, cp.token, stream))
                except httpx.HTTPError as exc:
                    results.append(-2)
                    print("request error:", repr(exc))

        workers = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(6)]
        for w in workers:
            w.start()
        try:
            time.sleep(2)
            ep.update(engine_args=["--max-num-seqs", "32"])
            time.sleep(1)
            cp.wait_for("busy", "running", timeout=180)
            deadline = time.monotonic() + 60
            while psutil.pid_exists(old.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)  # traffic on the new replica only
        finally:
            stop.set()
            for w in workers:
                w.join()
        assert not psutil.pid_exists(old.pid), "the old replica should be gone"
        failures = [r for r in results if r != 200]
        print(f"rolling update under load: {len(results)} requests, {len(failures)} failed")
        assert len(results) > 50
        assert failures == [], f"{len(failures)} of {len(results)} requests failed: {set(failures)}"
        [new] = replica_processes(cp.data_dir)
        assert "--max-num-seqs" in new.cmdline()
