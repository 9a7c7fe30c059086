"""Autoscaling end to end: a burst at zero replicas is served in full, replicas rise within seconds,
and once traffic stops the endpoint goes back down to zero."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from modelport import Client
from tests.support.control_plane_process import ControlPlaneProcess, audit_cli

WORKERS = 12
BURST_S = 35.0


def chat(url: str, token: str, stream: bool) -> int:
    body = {
        "model": "x",
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": 48,
        "ignore_eos": True,
        "stream": stream,
    }
    headers = {"authorization": f"Bearer {token}"}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=180) as r:
        text = b"".join(r.iter_bytes())
    if r.status_code == 200 and stream and not text.rstrip().endswith(b"data: [DONE]"):
        return -1  # a stream that did not end properly
    return r.status_code


def served_by_replicas(data_dir: Path, endpoint: str) -> list[str]:
    """The replica ids that served the endpoint's requests, from the audit trail's inference records
    (written within a second of each request's end)."""
    done = audit_cli(data_dir, "export")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return [r["detail"]["replica_id"] for r in records
            if r["kind"] == "inference" and r["target"] == f"default/{endpoint}"]  # fmt: skip


def test_burst_at_zero_scales_out_and_idle_scales_back_to_zero(tmp_path: Path, tiny_model: Path) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        ep = Client(cp.url, token=cp.token).create_endpoint(
            "bursty",
            model=str(tiny_model),
            min_replicas=0,
            max_replicas=3,
            target_pending=2,
            scale_to_zero_after_s=6,
            stabilization_s=2,
        )
        # a new endpoint starts one replica; with no traffic it goes to zero after the idle timeout
        cp.wait_for("bursty", "running", timeout=120)
        cp.wait_for("bursty", "scaledToZero", timeout=60, ready=0)

        ready_seen: list[tuple[float, int, int]] = []  # (seconds into the burst, ready, target)
        done = threading.Event()
        start = time.monotonic()

        def watch() -> None:
            while not done.is_set():
                status = cp.endpoint("bursty")["status"]
                assert isinstance(status, dict)
                ready_seen.append((time.monotonic() - start, status["readyReplica"], status["targetReplica"]))
                time.sleep(0.25)

        def worker(i: int) -> list[int]:
            statuses = []
            while time.monotonic() - start < BURST_S:
                statuses.append(chat(str(ep.url), cp.token, stream=i % 2 == 0))
            return statuses

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                results = [s for statuses in pool.map(worker, range(WORKERS)) for s in statuses]
        finally:
            done.set()
            watcher.join()

        assert results and results.count(200) == len(results), results
        first_target = next((t for t, _, target in ready_seen if target > 1), None)
        first_ready = next((t for t, ready, _ in ready_seen if ready > 1), None)
        assert first_target is not None and first_ready is not None, ready_seen[-10:]
        print(
            f"{len(results)} requests from {WORKERS} clients over {BURST_S:g} s starting at zero: all 200; "
            f"target > 1 after {first_target:.1f} s, ready > 1 after {first_ready:.1f} s, "
            f"max ready {max(r for _, r, _ in ready_seen)}"
        )

        # traffic stopped: down after the stabilization window, then zero after the idle timeout
        cp.wait_for("bursty", "scaledToZero", timeout=90, ready=0)
        events = ep.events()
        path = [(e["from"], e["to"], e["cause"]) for e in events]
        assert (0, 1, "request") in path or any(c == "autoscaler" and f == 0 for f, _, c in path), path
        assert any(c == "autoscaler" and t > f >= 1 for f, t, c in path), path
        assert path[-1][1] == 0 and path[-1][2] == "autoscaler", path
        assert all(e["reason"] for e in events)


def test_a_warm_standby_serves_a_request_at_zero_without_loading(tmp_path: Path, tiny_model: Path) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        ep = Client(cp.url, token=cp.token).create_endpoint(
            "standby", model=str(tiny_model), min_replicas=0, max_replicas=2, warm_standby=1
        )
        # one serving replica plus one loaded standby, then scaled to zero: the standby stays
        deadline = time.monotonic() + 180
        while (status := cp.endpoint("standby")["status"])["standbyReplica"] != 1:  # type: ignore[index]
            assert time.monotonic() < deadline, status
            time.sleep(0.3)
        ep.scale_to_zero()
        asleep = cp.wait_for("standby", "scaledToZero", timeout=60, ready=0)["status"]
        assert isinstance(asleep, dict)
        kept = [r for r in asleep["replicas"] if r["phase"] == "ready"]
        assert asleep["standbyReplica"] == 1 and len(kept) == 1, asleep

        start = time.monotonic()
        assert chat(str(ep.url), cp.token, stream=True) == 200
        served_after = time.monotonic() - start
        # the replica that answered was the standby (a replica forked for the request may be ready
        # by now, so its id is read from the request's own audit record, not from the replica list)
        deadline = time.monotonic() + 30
        while not (served := served_by_replicas(tmp_path / "data", "standby")):
            assert time.monotonic() < deadline, "no inference record for the request"
            time.sleep(0.5)
        assert served == [kept[0]["id"]], (served, kept)
        print(f"request at zero with a warm standby: answered in {served_after:.2f} s, no load on its path")
        cp.wait_for("standby", "running", timeout=120)
        deadline = time.monotonic() + 180
        while (status := cp.endpoint("standby")["status"])["standbyReplica"] != 1:  # type: ignore[index]
            assert time.monotonic() < deadline, status  # a new standby is loaded behind it
            time.sleep(0.3)
