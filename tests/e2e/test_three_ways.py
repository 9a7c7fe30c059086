"""The issue's first user story: `modelport up` gives a demo endpoint in one step; a second
endpoint comes from the CLI, a third from huggingface_hub; all three answer chat completions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, InferenceClient, constants

from modelport.sdk.huggingface import use_modelport
from tests.support.control_plane_process import ControlPlaneProcess


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    # HF_HUB_OFFLINE blocks every huggingface_hub HTTP call, even to loopback; nothing here reaches the Hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub_pointed(cp: ControlPlaneProcess) -> Iterator[None]:
    previous = use_modelport(cp.url)
    yield
    constants.INFERENCE_ENDPOINTS_ENDPOINT = previous


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", None) as control_plane:  # demo endpoint on (the default)
        yield control_plane


def cli(cp: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_URL": cp.url, "MODELPORT_DATA_DIR": str(cp.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "endpoints", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_demo_cli_and_huggingface_hub_endpoints_all_answer(
    cp: ControlPlaneProcess, tiny_model: Path, hub_online: None, hub_pointed: None
) -> None:
    demo = cp.wait_for("demo", "running", timeout=180)

    created = cli(cp, "create", "from-cli", "--model", str(tiny_model), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "from-cli"

    api = HfApi()
    hub_ep = api.create_inference_endpoint(
        "from-hub", repository=str(tiny_model), framework="pytorch", accelerator="cpu",
        instance_size="x1", instance_type="local", region="local", vendor="local",
        type="authenticated", namespace="default", token=cp.token,
    )  # fmt: skip
    hub_ep.wait(timeout=180, refresh_every=1)
    assert hub_ep.status == "running"

    listed = cli(cp, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {e["name"] for e in json.loads(listed.stdout)["items"]} == {"demo", "from-cli", "from-hub"}
    cli_ep = cp.wait_for("from-cli", "running", timeout=180)

    urls = [str(demo["status"]["url"]), str(cli_ep["status"]["url"]), str(hub_ep.url)]  # type: ignore[index]
    for url in urls:
        reply = InferenceClient(base_url=f"{url}/v1", token=cp.token).chat_completion(
            messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert reply.usage.completion_tokens >= 1
    # ... and with the client huggingface_hub hands out
    assert hub_ep.client.chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=2).choices

    # the endpoint URL refuses a missing token (protected by default)
    anonymous = httpx.post(f"{urls[1]}/v1/chat/completions", json={"messages": [], "model": "x"})
    assert anonymous.status_code == 401


def test_huggingface_hub_manages_the_endpoint(
    cp: ControlPlaneProcess, tiny_model: Path, hub_online: None, hub_pointed: None
) -> None:
    from huggingface_hub import get_inference_endpoint, list_inference_endpoints

    api = HfApi()
    ep = api.create_inference_endpoint(
        "managed", repository=str(tiny_model), framework="pytorch", accelerator="cpu", instance_size="x1",
        instance_type="local", region="local", vendor="local", namespace="default", token=cp.token,
        type="public", task="text-generation",
    )  # fmt: skip
    ep.wait(timeout=180, refresh_every=1)
    assert ep.client.text_generation("hello", max_new_tokens=3)  # public: no token needed
    names = {e.name for e in list_inference_endpoints(namespace="default", token=cp.token)}
    assert {"demo", "managed"} <= names

    ep.pause()
    assert ep.status == "paused"
    ep.resume()
    ep.wait(timeout=180, refresh_every=1)
    ep.scale_to_zero()
    assert ep.status == "scaledToZero"
    ep.resume()
    ep.wait(timeout=180, refresh_every=1)
    ep.update(min_replica=1, max_replica=2, revision="pinned-1")
    assert ep.revision == "pinned-1"
    ep.wait(timeout=180, refresh_every=1)
    fetched = get_inference_endpoint("managed", namespace="default", token=cp.token)
    assert fetched.revision == "pinned-1" and fetched.status == "running"
    assert fetched.client.text_generation("hello", max_new_tokens=3)
    ep.delete()
    assert "managed" not in {e.name for e in list_inference_endpoints(namespace="default", token=cp.token)}
