"""The gateway's front door against a real `modelport up`: keys, scopes, expiry, revocation,
rotation, private networks, limits, and per-key accounting under 1,000 concurrent requests."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelport.gateway.metering import prepare
from tests.support.control_plane_process import ControlPlaneProcess

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("gw") / "data", None, "--no-demo") as control:
        created = control.api(
            "POST", "/v2/endpoint/default", json={"name": "chat", "model": {"repository": str(tiny_model)}}
        )
        assert created.status_code == 201, created.text
        control.wait_for("chat", "running", timeout=180)
        yield control


def new_key(cp: ControlPlaneProcess, **body: Any) -> dict[str, Any]:
    response = cp.api("POST", "/v2/keys", json={"name": "test", **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def chat(cp: ControlPlaneProcess, key: str | None, endpoint: str = "chat", **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    url = f"{cp.url}/endpoints/default/{endpoint}/v1/chat/completions"
    return httpx.post(url, json=CHAT, headers=headers, timeout=60, **kw)


def set_endpoint(cp: ControlPlaneProcess, **body: Any) -> None:
    response = cp.api("PUT", "/v2/endpoint/default/chat", json=body)
    assert response.status_code == 200, response.text
    time.sleep(1.2)  # the loop publishes the new settings to the gateway within a tick


def test_missing_wrong_and_malformed_keys_get_401_that_reveals_nothing(cp: ControlPlaneProcess) -> None:
    key = new_key(cp)["key"]
    assert chat(cp, key).status_code == 200

    missing = chat(cp, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    wrong = chat(cp, key[:-4] + "AAAA")  # right id, wrong secret
    unknown = chat(cp, "mp_000000000000_" + "x" * 43)
    malformed = chat(cp, "not-a-key")
    for response in (wrong, unknown, malformed):
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid API key"
    # an endpoint that does not exist answers exactly like one that does
    for response in (missing, wrong):
        other = chat(cp, response.request.headers.get("authorization", "").removeprefix("Bearer ") or None,
                     endpoint="no-such-endpoint")  # fmt: skip
        assert (other.status_code, other.json()) == (response.status_code, response.json())


def test_expired_key_is_refused(cp: ControlPlaneProcess) -> None:
    key = new_key(cp, expiresIn=1)
    assert chat(cp, key["key"]).status_code == 200
    time.sleep(1.2)
    response = chat(cp, key["key"])
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]
    assert cp.api("GET", f"/v2/keys/{key['id']}").json()["status"] == "expired"


def test_revoked_key_stops_at_once_and_within_a_second_when_revoked_elsewhere(
    cp: ControlPlaneProcess,
) -> None:
    key = new_key(cp)
    assert chat(cp, key["key"]).status_code == 200
    assert cp.api("DELETE", f"/v2/keys/{key['id']}").json()["status"] == "revoked"
    refused = chat(cp, key["key"])
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]

    # another control plane sharing the store revokes a key: this gateway follows within 1 s
    other = new_key(cp)
    assert chat(cp, other["key"]).status_code == 200
    db = sqlite3.connect(cp.data_dir / "modelport.db")
    with db:
        db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (datetime.now(UTC).isoformat(" "), other["id"])
        )
    db.close()
    revoked_at = time.monotonic()
    while chat(cp, other["key"]).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "revocation took longer than 1 s"
        time.sleep(0.05)
    print(f"revocation made elsewhere took effect after {time.monotonic() - revoked_at:.2f} s")


def test_scope_endpoint_patterns_and_admin_scope(cp: ControlPlaneProcess) -> None:
    elsewhere = new_key(cp, endpoints=["team/*"])["key"]
    admin_only = new_key(cp, scopes=["admin"])["key"]
    scoped = new_key(cp, endpoints=["default/chat"])["key"]
    assert chat(cp, scoped).status_code == 200
    for key in (elsewhere, admin_only):
        denied = chat(cp, key)
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error"
        missing = chat(cp, key, endpoint="nope")  # no endpoint: the same answer, so existence does not leak
        assert missing.status_code == 403
        assert missing.json()["error"]["message"] == denied.json()["error"]["message"].replace("chat", "nope")
    # the admin API takes an admin-scoped key, and refuses an inference key
    assert (
        httpx.get(f"{cp.url}/v2/keys", headers={"authorization": f"Bearer {admin_only}"}).status_code == 200
    )
    assert httpx.get(f"{cp.url}/v2/keys", headers={"authorization": f"Bearer {scoped}"}).status_code == 401


def test_private_endpoint_only_from_allowed_networks(cp: ControlPlaneProcess) -> None:
    key = new_key(cp)["key"]
    try:
        set_endpoint(cp, type="private", traffic={"allowNetworks": ["10.0.0.0/8"]})
        from_outside = chat(cp, key)
        assert from_outside.status_code == 403
        unknown = chat(cp, key, endpoint="chat2")
        assert from_outside.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
            "chat2", "chat"
        )
        assert chat(cp, None).status_code == 401

        set_endpoint(cp, traffic={"allowNetworks": ["127.0.0.0/8"]})
        assert chat(cp, key).status_code == 200
    finally:
        set_endpoint(cp, type="protected", traffic={"allowNetworks": []})


def test_rotation_keeps_the_old_key_for_the_overlap_only(cp: ControlPlaneProcess) -> None:
    old = new_key(cp)
    rotated = cp.api("POST", f"/v2/keys/{old['id']}/rotate", json={"overlapSeconds": 2})
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["key"] != old["key"] and new["id"] != old["id"]
    assert chat(cp, old["key"]).status_code == 200 and chat(cp, new["key"]).status_code == 200
    assert cp.api("GET", f"/v2/keys/{old['id']}").json()["rotatedTo"] == new["id"]
    time.sleep(2.2)
    assert chat(cp, old["key"]).status_code == 401
    assert chat(cp, new["key"]).status_code == 200


def test_requests_per_minute_limit_answers_429_in_each_dialect(cp: ControlPlaneProcess) -> None:
    key = new_key(cp, limits={"requestsPerMinute": 2})["key"]
    assert chat(cp, key).status_code == 200
    assert chat(cp, key).status_code == 200
    limited = chat(cp, key)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    tgi = httpx.post(f"{cp.url}/endpoints/default/chat/generate", json={"inputs": "hi"},
                     headers={"authorization": f"Bearer {key}"})  # fmt: skip
    assert tgi.status_code == 429
    assert tgi.json()["error_type"] == "overloaded" and "requests per minute" in tgi.json()["error"]
    sdk = openai.OpenAI(base_url=f"{cp.url}/endpoints/default/chat/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2)


def test_token_budget_admits_only_requests_whose_reservation_fits(cp: ControlPlaneProcess) -> None:
    key = new_key(cp, limits={"tokenBudget": 30, "budgetPeriod": "day"})
    reserved = prepare("POST", "/v1/chat/completions", "", json.dumps(CHAT).encode()).reserve
    used = 0
    while (response := chat(cp, key["key"])).status_code == 200:
        used += response.json()["usage"]["total_tokens"]
        assert used < 200, "the budget never stopped the key"
    assert used + reserved > 30  # refused once the request's prompt + max_tokens no longer fit
    assert response.status_code == 429 and response.json()["error"]["code"] == "insufficient_quota"
    time.sleep(1.5)  # usage reaches the store in the next flush (every second)
    budget = cp.api("GET", f"/v2/keys/{key['id']}/usage").json()["budget"]
    assert budget["used"] == used and budget["limit"] == 30


def test_thousand_concurrent_requests_with_mixed_keys_are_accounted_to_each_key(
    cp: ControlPlaneProcess,
) -> None:
    keys = [new_key(cp, name=f"tenant-{i}") for i in range(5)]

    async def run() -> list[tuple[str, int, int]]:
        limits = httpx.Limits(max_connections=1000)
        async with httpx.AsyncClient(limits=limits, timeout=300) as client:
            url = f"{cp.url}/endpoints/default/chat/v1/completions"

            async def one(i: int) -> tuple[str, int, int]:
                key = keys[(i * 7) % len(keys)]
                body = {"model": "chat", "prompt": "hello " * (1 + i % 5), "max_tokens": 1 + i % 3}
                r = await client.post(url, json=body, headers={"authorization": f"Bearer {key['key']}"})
                assert r.status_code == 200, r.text
                usage = r.json()["usage"]
                return key["id"], usage["prompt_tokens"], usage["completion_tokens"]

            return await asyncio.gather(*(one(i) for i in range(1000)))

    results = asyncio.run(run())
    expected: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for key_id, prompt, completion in results:
        expected[key_id][0] += 1
        expected[key_id][1] += prompt
        expected[key_id][2] += completion
    deadline = time.monotonic() + 10
    while True:
        seen = {}
        for key in keys:
            usage = cp.api("GET", f"/v2/keys/{key['id']}/usage").json()
            seen[key["id"]] = [usage["requests"], usage["promptTokens"], usage["completionTokens"]]
        if seen == dict(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert seen == dict(expected)


def test_no_key_ever_reaches_a_log(cp: ControlPlaneProcess) -> None:
    key = new_key(cp)["key"]
    chat(cp, key)
    chat(cp, key[:-3] + "zzz")
    time.sleep(0.5)
    logs = [cp.log_path, *(cp.data_dir / "replicas").glob("*")]
    secret = key.split("_", 2)[2]
    for path in logs:
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def keys_cli(cp: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_URL": cp.url, "MODELPORT_TOKEN": cp.token}
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_cli_create_use_usage_rotate_revoke(cp: ControlPlaneProcess) -> None:
    created = keys_cli(cp, "create", "ci-bot", "--endpoint", "default/chat", "--rpm", "100", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["limits"]["requestsPerMinute"] == 100 and key["endpoints"] == ["default/chat"]
    assert chat(cp, key["key"]).status_code == 200

    shown = keys_cli(cp, "create", "human")
    assert shown.returncode == 0 and "shown only this once" in shown.stderr and "mp_" in shown.stdout
    listed = keys_cli(cp, "list")
    assert key["id"] in listed.stdout and key["key"] not in listed.stdout

    time.sleep(1.5)  # the usage log flushes every second
    usage = json.loads(keys_cli(cp, "usage", key["id"], "--json").stdout)
    assert usage["requests"] == 1 and usage["byEndpoint"][0]["name"] == "chat"

    rotated = json.loads(keys_cli(cp, "rotate", key["id"], "--overlap", "0", "--json").stdout)
    assert chat(cp, key["key"]).status_code == 401 and chat(cp, rotated["key"]).status_code == 200
    assert keys_cli(cp, "revoke", rotated["id"]).returncode == 0
    assert chat(cp, rotated["key"]).status_code == 401

    bad = keys_cli(cp, "create", "x", "--expires-in", "5 weeks")
    assert bad.returncode == 2 and "duration" in bad.stderr
    assert keys_cli(cp, "describe", "000000000000").returncode == 3
