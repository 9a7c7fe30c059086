"""The whole endpoint lifecycle against a real `modelport up`, on SQLite and on PostgreSQL.

Real control plane process, real replica processes running the builtin engine on a tiny
model, the real SDK and OpenAI client; one run per store backend.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from modelport import Client
from modelport.sdk.errors import Conflict, EndpointFailed, NotFound, ValidationError
from tests.support.control_plane_process import ControlPlaneProcess, replica_processes


@pytest.fixture
def control_plane(tmp_path: Path, store_url: str) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", store_url, "--no-demo") as cp:
        yield cp


def chat(ep_url: str, token: str) -> str:
    client = openai.OpenAI(base_url=f"{ep_url}/v1", api_key=token, max_retries=0)
    reply = client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    return reply.choices[0].message.content or ""


def test_lifecycle(control_plane: ControlPlaneProcess, tiny_model: Path) -> None:
    client = Client(control_plane.url, token=control_plane.token)
    ep = client.create_endpoint("chat", model=str(tiny_model), engine_args=["--kv-cache-memory", "8MiB"])
    assert ep.state in ("pending", "initializing")
    ep.wait(timeout=120, poll_interval=0.3)
    assert ep.state == "running" and ep.url == f"{control_plane.url}/endpoints/default/chat"
    answer = ep.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert answer.usage is not None and answer.usage.completion_tokens >= 1

    # the store and the API agree, names are unique, bad input names its field
    assert [e.name for e in client.list_endpoints()] == ["chat"]
    with pytest.raises(Conflict):
        client.create_endpoint("chat", model=str(tiny_model))
    with pytest.raises(ValidationError) as bad:
        client.create_endpoint("other", model=str(tiny_model), min_replicas=3, max_replicas=1)
    assert bad.value.field == "compute.scaling"
    assert [e.name for e in client.list_endpoints()] == ["chat"]  # nothing half-written
    logs = ep.logs(tail=50)
    assert logs and any("serving" in line or "Uvicorn" in line for r in logs for line in r["lines"])

    # scale out and back in
    ep.update(min_replicas=2, max_replicas=2)
    control_plane.wait_for("chat", "running", ready=2)
    ep.update(min_replicas=1)
    control_plane.wait_for("chat", "running", ready=1)

    # pause: a clear "paused" error on the endpoint URL, different from scaled-to-zero
    ep.pause()
    control_plane.wait_for("chat", "paused", ready=0)
    with pytest.raises(openai.APIStatusError) as paused:
        chat(ep.url, control_plane.token)
    assert paused.value.status_code == 503 and "paused" in paused.value.message
    _wait_no_replicas(control_plane)
    ep.resume()
    ep.wait(timeout=120, poll_interval=0.3)
    assert chat(ep.url, control_plane.token)

    # scale to zero: a request that will not wait gets a retryable 503 and wakes the endpoint up;
    # one that may wait (the default hold) is served once a replica is ready
    ep.scale_to_zero()
    control_plane.wait_for("chat", "scaledToZero", ready=0)
    response = httpx.post(
        f"{ep.url}/v1/chat/completions",
        headers={**control_plane.headers, "x-scale-up-timeout": "0"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.json()["error"]["code"] == "scaled_to_zero"
    assert chat(ep.url, control_plane.token)  # held until the woken replica is ready
    assert ep.fetch().state == "running"

    # a new revision rolls out and ends running on generation 2
    ep.update(revision="v2")
    assert ep.state == "updating"
    control_plane.wait_for("chat", "running")
    deadline = time.monotonic() + 60  # the old replica drains, then goes
    while {r.generation for r in ep.fetch().replicas} != {2} and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ep.revision == "v2"
    assert [(r.generation, r.phase) for r in ep.replicas] == [(2, "ready")]

    ep.delete()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _endpoint_exists(client, "chat"):
        time.sleep(0.3)
    with pytest.raises(NotFound):
        client.get_endpoint("chat")
    _wait_no_replicas(control_plane)


def test_model_that_cannot_load_fails_with_its_error(
    control_plane: ControlPlaneProcess, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')  # no weights, no tokenizer
    client = Client(control_plane.url, token=control_plane.token)
    ep = client.create_endpoint("broken", model=str(broken))
    with pytest.raises(EndpointFailed) as failed:
        ep.wait(timeout=120, poll_interval=0.3)
    assert "failed to start 3 times" in str(failed.value)
    ep.fetch()
    assert ep.state == "failed" and "error" in ep.message.lower()
    assert "\n" not in ep.message and "Traceback" not in ep.message  # the reason, not a traceback
    _wait_no_replicas(control_plane)


def test_failed_update_rolls_back_and_keeps_serving(
    control_plane: ControlPlaneProcess, tiny_model: Path, tmp_path: Path
) -> None:
    client = Client(control_plane.url, token=control_plane.token)
    ep = client.create_endpoint("steady", model=str(tiny_model))
    ep.wait(timeout=120, poll_interval=0.3)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    # whole weights (a cut or garbled file is refused at the update itself) but no tokenizer to load
    (broken / "tokenizer.json").write_text("not a tokenizer")
    ep.update(model=str(broken))
    rolled_back = control_plane.wait_for("steady", "updateFailed", timeout=180)
    assert "rolled back" in str(rolled_back["status"]["message"])  # type: ignore[index]
    assert rolled_back["model"]["repository"] == str(tiny_model)  # type: ignore[index]
    assert chat(ep.url, control_plane.token)  # the old replica never stopped serving


def _replica_count(cp: ControlPlaneProcess) -> int:
    return len(replica_processes(cp.data_dir))


def _wait_no_replicas(cp: ControlPlaneProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _replica_count(cp) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _replica_count(cp) == 0


def _endpoint_exists(client: Client, name: str) -> bool:
    try:
        client.get_endpoint(name)
    except NotFound:
        return False
    return True
