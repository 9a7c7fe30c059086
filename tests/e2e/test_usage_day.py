"""A scripted day of mixed traffic against a real `modelport up`: 1,000 requests from three keys
to two endpoints (unary, streamed, aborted streams, errors), one endpoint scaled to zero and
woken halfway. `modelport usage` must count every request exactly once, every token the
clients were told of, and bill replica-seconds within 1 s of the replicas' measured uptime."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.control_plane_process import ControlPlaneProcess, replica_processes

pytestmark = pytest.mark.timeout(900)

REQUESTS = 1000
KEYS = ("alice", "bob", "carol")  # carol's requests include every aborted stream
ENDPOINTS = ("day-a", "day-b")  # day-b is scaled to zero halfway, and woken by traffic


@dataclass
class Sent:
    key: str
    endpoint: str
    kind: str  # unary | stream | abort | error
    status: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    chunks: int = 0  # tokens (non-empty content chunks) a stream read


class UptimeWatcher:
    """Polls the replica processes every 0.1 s: when each was created and last seen alive."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.seen: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for proc in replica_processes(self.data_dir):
                try:
                    argv = proc.cmdline()
                    entry = self.seen.setdefault(proc.pid, {"created": proc.create_time(),
                        "endpoint": argv[argv.index("--served-model-name") + 1]})  # fmt: skip
                except (psutil.Error, ValueError, IndexError):
                    continue
                entry["last_seen"] = now
                entry["alive"] = True
            alive = {p.pid for p in replica_processes(self.data_dir)}
            for pid, entry in self.seen.items():
                entry["alive"] = pid in alive
            self._stop.wait(0.1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def uptime(self, at: float) -> dict[str, float]:
        """Seconds each endpoint's replicas ran, counting those still alive up to `at`."""
        out: dict[str, float] = defaultdict(float)
        for entry in self.seen.values():
            end = at if entry["alive"] else entry["last_seen"]
            out[entry["endpoint"]] += max(0.0, min(end, at) - entry["created"])
        return dict(out)


def plan(rng: random.Random) -> list[Sent]:
    out = []
    for i in range(REQUESTS):
        key = KEYS[i % 3]
        kind = rng.choices(["unary", "stream", "error"], weights=[60, 30, 10])[0]
        if key == "carol" and i % 4 == 0:
            kind = "abort"
        endpoint = "day-a" if kind == "abort" else rng.choice(ENDPOINTS)
        out.append(Sent(key, endpoint, kind))
    return out


async def send(client: httpx.AsyncClient, url: str, secret: str, s: Sent, n: int) -> None:
    headers = {"authorization": f"Bearer {secret}", "x-scale-up-timeout": "300"}
    base = f"{url}/endpoints/default/{s.endpoint}/v1"
    if s.kind in ("unary", "error"):
        body = {"model": s.endpoint, "prompt": "one two three " * (1 + n % 5), "max_tokens": 1 + n % 8}
        if s.kind == "error":
            body["max_tokens"] = -1
        answer = await client.post(f"{base}/completions", json=body, headers=headers)
        s.status = answer.status_code
        if answer.status_code == 200:
            s.prompt_tokens = answer.json()["usage"]["prompt_tokens"]
            s.completion_tokens = answer.json()["usage"]["completion_tokens"]
        return
    chat = {"model": s.endpoint, "messages": [{"role": "user", "content": f"day {n}"}], "stream": True,
            "max_tokens": 400 if s.kind == "abort" else 1 + n % 12,
            "stream_options": {"include_usage": True}}  # fmt: skip
    async with client.stream("POST", f"{base}/chat/completions", json=chat, headers=headers) as answer:
        s.status = answer.status_code
        async for line in answer.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                s.prompt_tokens = event["usage"]["prompt_tokens"]
                s.completion_tokens = event["usage"]["completion_tokens"]
            if event.get("choices") and event["choices"][0]["delta"].get("content"):  # a token
                s.chunks += 1
                if s.kind == "abort" and s.chunks == 3:
                    return  # the client goes away mid-stream


async def run(url: str, secrets: dict[str, str], batch: list[tuple[int, Sent]]) -> None:
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=300) as client:

        async def one(n: int, s: Sent) -> None:
            async with limit:
                await send(client, url, secrets[s.key], s, n)

        await asyncio.gather(*(one(n, s) for n, s in batch))


def cli(cp: ControlPlaneProcess, *args: str) -> str:
    env = {**os.environ, "MODELPORT_URL": cp.url, "MODELPORT_TOKEN": cp.token, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "modelport.cli.main", *args],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def usage_cli(cp: ControlPlaneProcess, *args: str) -> str:
    return cli(cp, "usage", *args)


@dataclass
class Expected:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)  # prompt + completion, as the clients were told


def test_a_day_of_mixed_traffic_is_metered_exactly_and_billed_per_second(
    tmp_path: Path, tiny_model: Path
) -> None:
    data = tmp_path / "data"
    requests = plan(random.Random(20261201))
    with ControlPlaneProcess(data, None, "--no-demo") as cp:
        watcher = UptimeWatcher(data)
        watcher.start()
        for name, minimum in (("day-a", 1), ("day-b", 0)):
            scaling = {"minReplica": minimum, "maxReplica": 1, "scaleToZeroTimeout": 60}
            body = {"name": name, "model": {"repository": str(tiny_model)}, "compute": {"scaling": scaling}}
            assert cp.api("POST", "/v2/endpoint/default", json=body).status_code == 201
        cp.wait_for("day-a", "running", timeout=180)
        secrets = {}
        for key in KEYS:
            made = cp.api("POST", "/v2/keys", json={"name": key}).json()
            secrets[key] = made["key"]
        numbered = list(enumerate(requests))
        asyncio.run(run(cp.url, secrets, numbered[: REQUESTS // 2]))
        assert cp.api("POST", "/v2/endpoint/default/day-b/scale-to-zero").status_code == 200
        cp.wait_for("day-b", "scaledToZero", timeout=120)
        asyncio.run(run(cp.url, secrets, numbered[REQUESTS // 2 :]))  # wakes day-b
        time.sleep(2.5)  # the usage log writes every second
        by_endpoint = json.loads(usage_cli(cp, "--json"))
        by_key = json.loads(usage_cli(cp, "--by", "key", "--json"))
        as_csv = list(csv.DictReader(io.StringIO(usage_cli(cp, "--csv"))))
        until = by_endpoint["at"]  # the series end where the usage report did
        stats = {
            name: json.loads(cli(cp, "endpoints", "stats", name, "--step", "10", "--to", until, "--json"))
            for name in ENDPOINTS
        }
        plotted = tmp_path / "day-b.png"
        cli(cp, "endpoints", "stats", "day-b", "--step", "10", "--to", until, "--plot", str(plotted))
        watcher.stop()
        names = {made["id"]: made["name"] for made in cp.api("GET", "/v2/keys").json()["items"]}

    assert all(s.status in (200, 400) for s in requests), Counter(s.status for s in requests)
    assert Counter(s.kind for s in requests)["abort"] > 50
    exact = Expected()  # per key and per endpoint, from what the clients were told
    for s in requests:
        for group in (f"key:{s.key}", f"ep:{s.endpoint}"):
            exact.requests[group] += 1
            exact.errors[group] += s.status >= 400
            if s.kind != "abort":
                exact.tokens[group] += s.prompt_tokens + s.completion_tokens

    keyed = {names[item["key_id"]]: item for item in by_key["items"] if item["key_id"] in names}
    assert sum(item["requests"] for item in by_key["items"]) == REQUESTS  # each request once
    for key in KEYS:
        item = keyed[key]
        assert item["requests"] == exact.requests[f"key:{key}"], key
        assert item["errors"] == exact.errors[f"key:{key}"], key
    for key in ("alice", "bob"):  # no aborted stream: every token the clients were told of
        item = keyed[key]
        assert item["prompt_tokens"] + item["completion_tokens"] == exact.tokens[f"key:{key}"], key
    # carol's aborted streams: counted, and at least the tokens her client read, at most what it asked for
    aborted = [s for s in requests if s.kind == "abort"]
    carol = keyed["carol"]["prompt_tokens"] + keyed["carol"]["completion_tokens"] - exact.tokens["key:carol"]
    assert sum(s.chunks for s in aborted) <= carol
    assert keyed["carol"]["completion_tokens"] <= sum(400 for _ in aborted) + exact.tokens["key:carol"]

    rows = {item["endpoint"]: item for item in by_endpoint["items"]}
    assert by_endpoint["totals"]["requests"] == REQUESTS
    for endpoint in ENDPOINTS:
        assert rows[endpoint]["requests"] == exact.requests[f"ep:{endpoint}"]
        assert rows[endpoint]["errors"] == exact.errors[f"ep:{endpoint}"]
    day_b = rows["day-b"]  # no aborted stream went there
    assert day_b["prompt_tokens"] + day_b["completion_tokens"] == exact.tokens["ep:day-b"]
    assert {row["namespace"] for row in as_csv} >= {"default", "total"}
    assert int(next(r for r in as_csv if r["namespace"] == "total")["requests"]) == REQUESTS

    at = datetime.fromisoformat(by_endpoint["at"]).timestamp()
    measured = watcher.uptime(at)
    for endpoint in ENDPOINTS:
        billed = rows[endpoint]["replica_seconds"]
        print(f"{endpoint}: billed {billed:.3f} replica-seconds, measured {measured[endpoint]:.3f}")
        assert abs(billed - measured[endpoint]) < 1.0, (endpoint, billed, measured, watcher.seen)
    assert len([e for e in watcher.seen.values() if e["endpoint"] == "day-b"]) >= 2  # stopped and woken

    # the analytics series: every request in one step, the replicas that ran, a picture
    for endpoint in ENDPOINTS:
        points = stats[endpoint]["points"]
        assert sum(p["requests"] for p in points) == exact.requests[f"ep:{endpoint}"]
        ran = sum(p["replicas"] * 10 for p in points)  # average replicas x step seconds
        assert abs(ran - rows[endpoint]["replica_seconds"]) < 0.5, (endpoint, ran)  # rounding only
    assert plotted.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
