"""The gateway against hostile callers and failing replicas (issue 16, items 1, 7, 9 and 11).

One real `modelport up` for the module, with short upstream deadlines and a cap of two held
requests per endpoint; its endpoints run tests/support/faulty_app.py, an engine that crashes, hangs or
stalls on request and also serves routes no caller may reach. Every request the engine gets is
appended to a hits file, so each test checks what reached a replica, not only what the client
was told.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from modelport.gateway.metering import prepare
from modelport.sdk import Client
from tests.support.control_plane_process import ControlPlaneProcess

APP = str(Path(__file__).resolve().parents[1] / "support" / "faulty_app.py")
DEADLINE_S = 5  # the gateway's first-byte and idle deadlines in this module


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    env = {
        "MODELPORT_UPSTREAM_FIRST_BYTE_TIMEOUT": str(DEADLINE_S),
        "MODELPORT_UPSTREAM_IDLE_TIMEOUT": str(DEADLINE_S),
        "MODELPORT_MAX_HELD": "2",
    }
    data = tmp_path_factory.mktemp("hostile")
    with ControlPlaneProcess(data, None, "--no-demo", "--hold-timeout", "2", *ALLOW_CUSTOM, env=env) as plane:
        yield plane


ALLOW_CUSTOM = ("--allow-custom-commands",)


def faulty_image(hits: Path, *extra: str) -> dict[str, object]:
    command = [sys.executable, APP, "--port", "{port}", "--hits", str(hits), *extra]
    return {"custom": {"command": command, "healthRoute": "/health", "apis": ["openai"]}}


@pytest.fixture(scope="module")
def faulty(
    cp: ControlPlaneProcess, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """An endpoint of two faulty replicas: its URL and its hits file."""
    hits = tmp_path_factory.mktemp("hits") / "faulty.log"
    hits.touch()
    client = Client(cp.url, token=cp.token)
    client.create_endpoint("faulty", model=str(tiny_model), image=faulty_image(hits), min_replicas=2)
    url = wait_ready(client, "faulty", 2)
    yield url, hits


def wait_ready(client: Client, name: str, replicas: int, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while (ep := client.get_endpoint(name)).state != "running" or ep.ready_replicas < replicas:
        assert time.monotonic() < deadline, f"{name}: {ep.state} {ep.ready_replicas} ready: {ep.message}"
        time.sleep(0.2)
    return ep.url


def chat(url: str, token: str, text: str, timeout: float = 30) -> httpx.Response:
    body = {"model": "faulty", "messages": [{"role": "user", "content": text}]}
    headers = {"authorization": f"Bearer {token}", "x-probe": "test"}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=timeout)


def lines(hits: Path) -> list[str]:
    """What reached the replicas of this module's requests (not the control plane's own calls)."""
    return [line for line in hits.read_text().splitlines() if not line.endswith(" -")]


def test_only_inference_routes_reach_a_replica(cp: ControlPlaneProcess, faulty: tuple[str, Path]) -> None:
    url, hits = faulty
    auth = {"authorization": f"Bearer {cp.token}", "x-probe": "test"}
    before = len(lines(hits))
    for method, path in [
        ("POST", "/sleep"),
        ("POST", "/collective_rpc"),
        ("POST", "/v1/load_lora_adapter"),
        ("GET", "/metrics"),
        ("GET", "/admin"),
        ("POST", "/v1/models/%2e%2e/%2e%2e/sleep"),
        ("GET", "/v1/models/../../collective_rpc"),
        ("POST", "/v1/chat/completions/../../../sleep"),
    ]:
        target = httpx.URL(url)
        r = httpx.request(method, target.copy_with(raw_path=target.raw_path + path.encode()), headers=auth)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        body = r.json()
        if path.startswith("/v1/") and ".." not in path:
            assert body["error"]["code"] == "not_found"  # OpenAI's shape on /v1
        elif not path.startswith("/v1/"):
            assert isinstance(body["error"], str) and "error_type" in body  # TGI's shape elsewhere
    r = httpx.get(f"{url}/v1/chat/completions", headers=auth)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert chat(url, cp.token, "hello").json()["choices"][0]["message"]["content"] == "hello"
    reached = lines(hits)[before:]
    assert [line.split(" ", 1)[1] for line in reached] == ["POST /v1/chat/completions test"], reached


def test_a_request_that_crashes_its_replica_is_not_replayed_on_another(
    cp: ControlPlaneProcess, faulty: tuple[str, Path]
) -> None:
    url, hits = faulty
    for _ in range(6):  # both replicas answer once they are balanced over
        assert chat(url, cp.token, "warm").status_code == 200
    before = len(lines(hits))
    pids = {int(line.split()[0]) for line in lines(hits)}
    assert len(pids) == 2
    r = chat(url, cp.token, "crash")
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_dropped", r.text
    sent = [line for line in lines(hits)[before:] if "/v1/chat/completions" in line]
    assert len(sent) == 1, sent  # one replica got it; the other was never sent it
    (crashed,) = {int(line.split()[0]) for line in sent}
    (other,) = pids - {crashed}
    assert _alive(other), "the request was replayed on the other replica"
    wait_ready(Client(cp.url, token=cp.token), "faulty", 2)  # the crashed one is restarted


def test_a_hung_replica_answers_504_at_the_first_byte_deadline(
    cp: ControlPlaneProcess, faulty: tuple[str, Path]
) -> None:
    url, _ = faulty
    started = time.monotonic()
    r = chat(url, cp.token, "hang")
    took = time.monotonic() - started
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout", r.text
    assert took < DEADLINE_S + 5, took
    assert chat(url, cp.token, "still serving").status_code == 200


def test_a_stream_that_goes_quiet_ends_with_an_error_at_the_idle_deadline(
    cp: ControlPlaneProcess, faulty: tuple[str, Path]
) -> None:
    url, _ = faulty
    body = {"model": "faulty", "messages": [{"role": "user", "content": "stall"}], "stream": True}
    events = []
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {cp.token}"},
        timeout=30,
    ) as r:  # fmt: skip
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert time.monotonic() - started < DEADLINE_S + 5
    assert '"stall"' in events[0]
    assert "incomplete" in events[-1] and "error" in events[-1], events


def test_a_client_that_leaves_while_waiting_for_the_first_byte_closes_the_upstream_call(
    cp: ControlPlaneProcess, faulty: tuple[str, Path]
) -> None:
    url, hits = faulty
    key = cp.api("POST", "/v2/keys", json={"name": "leaver"}).json()
    with pytest.raises(httpx.ReadTimeout):
        chat(url, key["key"], "hang", timeout=0.5)
    left = time.monotonic()
    deadline = left + DEADLINE_S - 1  # before the first-byte deadline would close it anyway
    while not any(line.endswith("DISCONNECTED") for line in lines(hits)):
        assert time.monotonic() < deadline, f"the replica still holds a call whose client left: {lines(hits)}"
        time.sleep(0.05)
    # the replica took the prompt, so the key is charged the gateway's estimate of it
    body = {"model": "faulty", "messages": [{"role": "user", "content": "hang"}]}
    estimate = prepare("POST", "/v1/chat/completions", "", json.dumps(body).encode()).prompt_estimate
    deadline = time.monotonic() + 10
    while (usage := cp.api("GET", f"/v2/keys/{key['id']}/usage").json())["requests"] < 1:
        assert time.monotonic() < deadline, usage
        time.sleep(0.2)
    assert usage["promptTokens"] == estimate > 0, usage


def test_held_requests_are_capped_per_endpoint_and_released_when_their_clients_leave(
    cp: ControlPlaneProcess, tiny_model: Path, tmp_path: Path
) -> None:
    client = Client(cp.url, token=cp.token)
    image = faulty_image(tmp_path / "slow.log", "--start-delay", "60")
    ep = client.create_endpoint("slow", model=str(tiny_model), image=image, min_replicas=1)
    auth = {"authorization": f"Bearer {cp.token}", "x-scale-up-timeout": "60"}

    url = f"{ep.url}/v1/chat/completions"

    async def two_held_then_one_more() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as http:
            leavers = [
                asyncio.ensure_future(http.post(url, json={"messages": []}, headers=auth)) for _ in range(2)
            ]
            # once both are held, one more is refused at once (a probe sent before that is held
            # and leaves after 1 s, so it takes no place for long)
            deadline = time.monotonic() + 20
            while True:
                assert time.monotonic() < deadline, "a third request was never refused"
                try:
                    refused = await http.post(url, json={"messages": []}, headers=auth, timeout=1)
                except httpx.ReadTimeout:
                    continue
                break
            for leaver in leavers:  # the two clients leave: their connections close
                leaver.cancel()
            await asyncio.gather(*leavers, return_exceptions=True)
            return refused

    r = asyncio.run(two_held_then_one_more())
    assert r.status_code == 429 and r.json()["error"]["code"] == "endpoint_busy", r.text
    time.sleep(0.5)
    # their places are free again: this one is held (up to --hold-timeout, 2 s), not refused;
    # `nan` is no way past the hold limit
    started = time.monotonic()
    r = httpx.post(
        f"{ep.url}/v1/chat/completions", json={"messages": []}, timeout=30,
        headers={"authorization": f"Bearer {cp.token}", "x-scale-up-timeout": "nan"},
    )  # fmt: skip
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_ready_replica", r.text
    assert 1.5 < time.monotonic() - started < 10
    ep.delete()


def test_a_failed_endpoint_does_not_show_its_replica_logs_to_callers(
    cp: ControlPlaneProcess, tiny_model: Path
) -> None:
    client = Client(cp.url, token=cp.token)
    command = [sys.executable, "-c", "print('SECRET-IN-REPLICA-LOG'); raise SystemExit(1)", "{port}"]
    ep = client.create_endpoint(
        "broken", model=str(tiny_model), image={"custom": {"command": command}}, min_replicas=1
    )
    deadline = time.monotonic() + 60
    while (ep := client.get_endpoint("broken")).state != "failed":
        assert time.monotonic() < deadline, ep.state
        time.sleep(0.3)
    assert "SECRET-IN-REPLICA-LOG" in ep.message  # the owner sees why, on /v2
    r = chat(ep.url, cp.token, "hi")
    assert r.status_code == 503 and r.json()["error"]["code"] == "endpoint_failed"
    assert "SECRET-IN-REPLICA-LOG" not in r.text
    ep.delete()


def test_refused_requests_do_not_label_metrics_with_names_the_caller_chose(cp: ControlPlaneProcess) -> None:
    for i in range(3):
        assert httpx.get(f"{cp.url}/endpoints/probe-ns-{i}/x/v1/models").status_code == 401
    metrics = httpx.get(f"{cp.url}/metrics", headers=cp.headers).text
    assert "probe-ns-" not in metrics
    assert 'modelport_gateway_refused_total{endpoint="-",namespace="-",reason="401"}' in metrics


def test_deeply_nested_json_is_a_400_not_a_500(cp: ControlPlaneProcess, faulty: tuple[str, Path]) -> None:
    url, _ = faulty
    deep = b'{"stream": true, "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    auth = {"authorization": f"Bearer {cp.token}", "content-type": "application/json"}
    r = httpx.post(f"{url}/v1/chat/completions", content=deep, headers=auth)
    assert r.status_code == 400 and "deeply" in r.json()["error"]["message"], r.text
    r = httpx.post(
        f"{url}/generate", content=b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", headers=auth
    )
    assert r.status_code == 422, r.text
    r = httpx.post(f"{cp.url}/v2/endpoint/default", content=b"[" * 100_000 + b"]" * 100_000, headers=auth)
    assert r.status_code == 400, r.text


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
