"""Token budgets hold under concurrency through a real `modelport up`: admission reserves each
request's estimated prompt + max_tokens, so concurrent requests cannot overshoot a key's budget,
and a stream cut before its usage chunk is charged its prompt, not 0."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.gateway.metering import prepare
from tests.support.control_plane_process import ControlPlaneProcess

IDS = list(range(5, 25))  # a prompt of token ids: the gateway's estimate of it is exact


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("reserve") / "data", None, "--no-demo") as control:
        created = control.api(
            "POST", "/v2/endpoint/default", json={"name": "chat", "model": {"repository": str(tiny_model)}}
        )
        assert created.status_code == 201, created.text
        control.wait_for("chat", "running", timeout=180)
        yield control


def new_key(cp: ControlPlaneProcess, **limits: Any) -> dict[str, Any]:
    response = cp.api(
        "POST", "/v2/keys", json={"name": "budgeted", "limits": {**limits, "budgetPeriod": "day"}}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def reserve(path: str, body: dict[str, Any]) -> int:
    """What the gateway reserves for this body (its prompt estimate + output allowance)."""
    return prepare("POST", path, "", json.dumps(body).encode()).reserve


def burst(cp: ControlPlaneProcess, key: str, path: str, body: dict[str, Any], n: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            url = f"{cp.url}/endpoints/default/chat{path}"
            headers = {"authorization": f"Bearer {key}"}
            return await asyncio.gather(*(client.post(url, json=body, headers=headers) for _ in range(n)))

    return asyncio.run(run())


def stored_usage(cp: ControlPlaneProcess, key_id: str, requests: int) -> dict[str, Any]:
    """The key's usage once `requests` records reached the store (it flushes every second)."""
    deadline = time.monotonic() + 10
    while (usage := cp.api("GET", f"/v2/keys/{key_id}/usage").json())["requests"] < requests:
        assert time.monotonic() < deadline, usage
        time.sleep(0.2)
    return usage  # type: ignore[no-any-return]


def test_twenty_concurrent_requests_against_a_budget_that_fits_five_admit_five(
    cp: ControlPlaneProcess,
) -> None:
    body = {"model": "chat", "prompt": IDS, "max_tokens": 6, "ignore_eos": True}
    each = reserve("/v1/completions", body)
    assert each == len(IDS) + 6
    key = new_key(cp, tokenBudget=5 * each)
    answers = burst(cp, key["key"], "/v1/completions", body, 20)
    served = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert len(served) == 5, [r.status_code for r in answers]
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {(429, "insufficient_quota")}
    assert all(r.json()["usage"]["total_tokens"] == each for r in served)  # the estimate was exact
    usage = stored_usage(cp, key["id"], 20)  # refusals are recorded too
    assert usage["budget"]["used"] == 5 * each == usage["budget"]["limit"]

    # chat with text: the estimate is conservative for real tokenizers, and still nothing but a
    # reservation that fits is admitted
    chat = {
        "model": "chat",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "ignore_eos": True,
    }
    texts = new_key(cp, tokenBudget=5 * reserve("/v1/chat/completions", chat))
    answers = burst(cp, texts["key"], "/v1/chat/completions", chat, 20)
    assert 1 <= sum(r.status_code == 200 for r in answers) <= 5
    assert {r.json()["error"]["code"] for r in answers if r.status_code != 200} == {"insufficient_quota"}


def test_a_stream_cut_before_its_usage_chunk_is_charged_its_prompt(cp: ControlPlaneProcess) -> None:
    body = {"model": "chat", "prompt": IDS, "max_tokens": 400, "ignore_eos": True, "stream": True}
    budget = reserve("/v1/completions", body) + 80
    key = new_key(cp, tokenBudget=budget)
    headers = {"authorization": f"Bearer {key['key']}"}
    url = f"{cp.url}/endpoints/default/chat/v1/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        assert next(line for line in response.iter_lines() if line.startswith("data: {"))
    usage = stored_usage(cp, key["id"], 1)  # the client left: no usage chunk was relayed
    relayed = usage["completionTokens"]
    assert usage["promptTokens"] == len(IDS) and relayed >= 1
    assert usage["budget"]["used"] == len(IDS) + relayed

    # the limiter charged the same: a request needing one token more than is left is refused,
    # one needing exactly what is left is served
    left = budget - len(IDS) - relayed

    def probe(tokens: int) -> httpx.Response:
        ids = [7] * (tokens - 1)
        return httpx.post(
            url, json={"model": "chat", "prompt": ids, "max_tokens": 1}, headers=headers, timeout=60
        )

    over = probe(left + 1)
    assert over.status_code == 429 and over.json()["error"]["code"] == "insufficient_quota"
    assert probe(left).status_code == 200
