"""`modelport serve --api openai`: a replica with only the OpenAI routes, as vLLM and llama.cpp
serve them, so the gateway's TGI/TEI translation can be tested against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import ServerProcess


@pytest.fixture(scope="module")
def openai_only(tiny_model: Path) -> Iterator[str]:
    with ServerProcess(tiny_model, "--served-model-name", "tiny", "--kv-cache-memory", "4MiB",
                       "--api", "openai") as server:  # fmt: skip
        yield server.url


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/generate"),
        ("POST", "/generate_stream"),
        ("POST", "/"),
        ("GET", "/info"),
        ("POST", "/tokenize"),
        ("POST", "/embed"),
        ("POST", "/similarity"),
    ],
)
def test_tgi_and_tei_routes_do_not_exist(openai_only: str, method: str, path: str) -> None:
    r = httpx.request(
        method, f"{openai_only}{path}", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}}
    )
    assert r.status_code == 404, (path, r.status_code)


def test_openai_routes_health_and_metrics_remain(openai_only: str) -> None:
    r = httpx.post(f"{openai_only}/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 3})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 3
    assert httpx.get(f"{openai_only}/v1/models").json()["data"][0]["id"] == "tiny"
    assert httpx.get(f"{openai_only}/health").status_code == 200
    assert httpx.get(f"{openai_only}/metrics").status_code == 200
    # /v1/embeddings is kept (embed_routes is filtered per route): a generative model says so itself
    r = httpx.post(f"{openai_only}/v1/embeddings", json={"model": "tiny", "input": "hi"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_kind"


def test_an_unknown_api_value_is_refused(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "modelport.cli.main", "serve", str(tmp_path), "--api", "tgi"]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2 and b"--api must be all or openai" in done.stderr
