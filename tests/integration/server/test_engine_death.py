"""A replica whose engine loop dies fails its in-flight requests in the API's shape and then
exits non-zero, so the control plane restarts it instead of routing to a 503 forever.

The loop is made to die for real with the test-only fault injection
MODELPORT_TEST_FAIL_ENGINE_AFTER_STEPS (envs.py): the loop raises at that step after ready."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from modelport import envs
from tests.support.server_process import ServerProcess


def test_a_dead_engine_loop_fails_requests_then_the_process_exits_1(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(envs.TEST_FAIL_ENGINE_AFTER_STEPS.name, "3")
    with ServerProcess(tiny_model, "--served-model-name", "tiny", "--kv-cache-memory", "4MiB") as server:
        assert server.proc is not None
        assert httpx.get(f"{server.url}/health").status_code == 200  # ready: the fault comes later
        body = {"prompt": "hello", "max_tokens": 20, "ignore_eos": True}
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=30)
        assert r.status_code == 500, r.text
        err = r.json()["error"]
        assert err["type"] == "server_error" and "engine error" in err["message"]
        deadline = time.monotonic() + 30
        while server.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.proc.returncode == 1
        stderr = server.proc.stderr.read().decode() if server.proc.stderr else ""
        assert "the engine stopped" in stderr and "fault injected" in stderr
