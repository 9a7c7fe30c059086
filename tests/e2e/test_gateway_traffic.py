"""Streaming behaviour and traffic control through a real gateway: client disconnects abort the
engine's work, a replica dying mid-stream ends the stream with an error event, the per-endpoint
concurrency cap and queue, and the overflow and fallback policies between endpoints."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport import Client
from tests.support.control_plane_process import ControlPlaneProcess, replica_processes

LONG = {"model": "x", "prompt": "once upon a time", "max_tokens": 400, "ignore_eos": True, "stream": True}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("traffic") / "data", None, "--no-demo") as control:
        client = Client(control.url, token=control.token)
        for name, traffic in (
            ("base", {"overflow": {"endpoint": "burst", "queueAbove": 1}}),
            ("burst", None),
            ("capped", {"maxConcurrent": 1, "maxQueue": 1}),
        ):
            client.create_endpoint(name, model=str(tiny_model), traffic=traffic)
        for name in ("base", "burst", "capped"):
            control.wait_for(name, "running", timeout=180)
        yield control


def url(cp: ControlPlaneProcess, endpoint: str) -> str:
    return f"{cp.url}/endpoints/default/{endpoint}"


def gauge(cp: ControlPlaneProcess, endpoint: str, name: str) -> float:
    """An engine metric as the control plane re-exports it (the endpoint URL does not forward
    /metrics: callers never reach an engine's own pages); scraped every 0.5 s."""
    text = httpx.get(f"{cp.url}/metrics", headers=cp.headers).text
    label = f'endpoint="{endpoint}"'
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*{label}[^}}]*\}} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_gauge(cp: ControlPlaneProcess, endpoint: str, name: str, value: float, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := gauge(cp, endpoint, name)) != value:
        assert time.monotonic() < deadline, f"{name} of {endpoint} is {seen}, not {value}"
        time.sleep(0.1)


def gateway_metric(cp: ControlPlaneProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{cp.url}/metrics", headers=cp.headers).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_client_disconnect_aborts_the_request_in_the_engine(cp: ControlPlaneProcess) -> None:
    with httpx.stream(
        "POST", f"{url(cp, 'burst')}/v1/completions", json=LONG, headers=cp.headers
    ) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        wait_gauge(cp, "burst", "modelport:num_requests_running", 1, timeout_s=3)
    # the engine stops generating for the client that left
    wait_gauge(cp, "burst", "modelport:num_requests_running", 0, timeout_s=5)


def test_replica_dying_mid_stream_ends_the_stream_with_an_error_event(cp: ControlPlaneProcess) -> None:
    lost_before = gateway_metric(cp, "modelport_gateway_replica_lost_total")
    events: list[str] = []
    with httpx.stream(
        "POST", f"{url(cp, 'burst')}/v1/completions", json=LONG, headers=cp.headers
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            events.append(line)
            if len(events) == 3:
                victim = [p for p in replica_processes(cp.data_dir) if "burst" in p.cmdline()]
                assert len(victim) == 1
                victim[0].kill()
    last = json.loads(events[-1].removeprefix("data:"))
    assert "failed mid-answer" in last["error"]["message"], events[-3:]
    assert events[-1] != "data: [DONE]"
    assert gateway_metric(cp, "modelport_gateway_replica_lost_total") == lost_before + 1
    cp.wait_for("burst", "running", timeout=120, ready=1)  # restarted by the control loop


def test_concurrency_cap_queues_then_refuses(cp: ControlPlaneProcess) -> None:
    body = {**LONG, "max_tokens": 150, "stream": False}

    def call(_: int) -> int:
        return httpx.post(
            f"{url(cp, 'capped')}/v1/completions", json=body, headers=cp.headers, timeout=120
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(call, range(4)))
    assert statuses == [200, 200, 429, 429]  # one in flight, one waiting, the rest refused at once
    busy = httpx.post(f"{url(cp, 'capped')}/generate", json={"inputs": "hi"}, headers=cp.headers)
    assert busy.status_code == 200  # the queue drains: capacity is back


def test_overflow_sends_bursts_to_the_second_endpoint(cp: ControlPlaneProcess) -> None:
    before = gateway_metric(cp, "modelport_gateway_policy_total", policy="overflow", target="burst")
    body = {**LONG, "max_tokens": 100, "stream": False}
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def call(_: int) -> None:
        r = httpx.post(f"{url(cp, 'base')}/v1/completions", json=body, headers=cp.headers, timeout=120)
        assert r.status_code == 200
        with lock:
            results.append(r.json())

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(call, range(6)))
    overflowed = (
        gateway_metric(cp, "modelport_gateway_policy_total", policy="overflow", target="burst") - before
    )
    assert len(results) == 6
    assert 1 <= overflowed <= 4  # base kept up to 2 (1 outstanding allowed, plus the one that tipped it)


def test_fallback_serves_while_the_endpoint_is_paused(cp: ControlPlaneProcess) -> None:
    client = Client(cp.url, token=cp.token)
    capped = client.get_endpoint("capped")
    capped.update(traffic={"fallback": "burst", "maxConcurrent": 1, "maxQueue": 1})
    capped.pause()
    cp.wait_for("capped", "paused")
    time.sleep(0.6)
    before = gateway_metric(cp, "modelport_gateway_policy_total", policy="fallback", target="burst")
    answer = httpx.post(f"{url(cp, 'capped')}/v1/completions", headers=cp.headers,
                        json={"model": "x", "prompt": "hi", "max_tokens": 2})  # fmt: skip
    assert answer.status_code == 200
    assert (
        gateway_metric(cp, "modelport_gateway_policy_total", policy="fallback", target="burst") == before + 1
    )

    capped.update(traffic={"fallback": None})
    time.sleep(0.6)
    paused = httpx.post(f"{url(cp, 'capped')}/v1/completions", headers=cp.headers,
                        json={"model": "x", "prompt": "hi", "max_tokens": 2})  # fmt: skip
    assert paused.status_code == 503 and paused.json()["error"]["code"] == "endpoint_paused"


def test_stream_usage_is_metered_but_not_shown_unless_asked_and_request_ids_pass_through(
    cp: ControlPlaneProcess,
) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
    headers = {**cp.headers, "x-request-id": "trace-123"}
    with httpx.stream("POST", f"{url(cp, 'burst')}/v1/chat/completions", json=body, headers=headers) as r:
        assert r.headers["x-request-id"] == "trace-123"
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    assert not any('"usage": {' in e or '"usage":{' in e for e in events)  # the client did not ask
    asked = {**body, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{url(cp, 'burst')}/v1/chat/completions", json=asked, headers=cp.headers) as r:
        usage_events = [json.loads(e[5:]) for e in r.iter_lines() if e.startswith("data: {")]
    assert usage_events[-1]["usage"]["completion_tokens"] == 5
    generated = httpx.post(f"{url(cp, 'burst')}/v1/completions", headers=cp.headers,
                           json={"model": "x", "prompt": "hi", "max_tokens": 2})  # fmt: skip
    assert len(generated.headers["x-request-id"]) == 32  # none given: the gateway made one
    time.sleep(1.5)  # the usage log flushes every second
    assert gateway_metric(cp, "modelport_gateway_tokens_total", endpoint="burst", kind="completion") >= 12
