"""A replica whose KV pool is smaller than one full context refuses, in each route's dialect, a
request that could never fit (it would preempt itself and recompute forever), and leaves the
pool empty afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import ServerProcess

# 512 KiB = 64 blocks of 16 tokens = 1024 tokens, under the tiny model's 2048-token context
POOL_TOKENS = 1024


@pytest.fixture(scope="module")
def small_pool(tiny_model: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tiny_model, "--served-model-name", "tiny", "--kv-cache-memory", "512KiB") as server:
        yield server


def test_openai_completion_past_the_whole_pool_is_a_400(small_pool: ServerProcess) -> None:
    body = {"prompt": "hello", "max_tokens": POOL_TOKENS + 100, "ignore_eos": True}
    r = httpx.post(f"{small_pool.url}/v1/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "max_tokens" and "whole pool" in err["message"]


def test_tgi_generate_past_the_whole_pool_is_a_422(small_pool: ServerProcess) -> None:
    body = {"inputs": "hello", "parameters": {"max_new_tokens": POOL_TOKENS + 100}}
    for path in ("/generate", "/generate_stream"):
        r = httpx.post(f"{small_pool.url}{path}", json=body, timeout=30)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error_type"] == "validation" and "whole pool" in r.json()["error"]


def test_chat_without_max_tokens_is_admitted_and_a_closed_stream_frees_everything(
    small_pool: ServerProcess,
) -> None:
    """The chat default (the rest of the context, 2048 tokens) is capped at what the pool holds,
    so the request is admitted rather than refused; closing the stream gives every block back."""
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "temperature": 0}
    with httpx.stream("POST", f"{small_pool.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200, r.read()
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 10
    while small_pool.metric("modelport:kv_cache_usage_perc") > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert small_pool.metric("modelport:kv_cache_usage_perc") == 0
    assert small_pool.metric("modelport:num_requests_running") == 0
    assert small_pool.metric("modelport:num_requests_waiting") == 0
