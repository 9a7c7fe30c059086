"""The control plane asks the planner before it stores an endpoint, and sizes engines from it.

A Llama-3.1-70B folder of header-only safetensors (141 GB described, a few kB on disk) cannot
fit this machine's RAM: creating an endpoint for it fails at once with the planner's reason,
through the SDK and the CLI, and an update to it leaves the serving revision untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from modelport.sdk import Client
from modelport.sdk.errors import ValidationError
from tests.support.control_plane_process import ControlPlaneProcess, replica_processes
from tests.support.model_headers import llama_tensors, write_hub_folder
from tests.unit.models.public_models import MODELS

LLAMA_70B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.1-70B")
pytestmark = pytest.mark.skipif(
    psutil.virtual_memory().total > 140e9, reason="this machine has the RAM to hold Llama-3.1-70B in bf16"
)


@pytest.fixture(scope="module")
def llama_70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "Llama-3.1-70B"
    write_hub_folder(folder, LLAMA_70B.config, llama_tensors(LLAMA_70B.config), shards=30)
    return folder


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        yield cp


def test_a_model_that_cannot_fit_is_refused_at_create_with_the_planner_reason(
    control_plane: ControlPlaneProcess, llama_70b: Path
) -> None:
    client = Client(control_plane.url, token=control_plane.token)
    started = time.monotonic()
    with pytest.raises(ValidationError) as info:
        client.create_endpoint("big", model=str(llama_70b))
    assert time.monotonic() - started < 10  # at once, not after a load attempt
    message = info.value.message
    assert "does not fit local CPU" in message and "141.1 GB" in message
    assert f"modelport plan {llama_70b}" in message
    assert info.value.status_code == 422 and info.value.field == "model.repository"
    assert client.list_endpoints() == []
    cli = subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "endpoints", "create", "big", "--model", str(llama_70b)],
        env={**os.environ, "MODELPORT_URL": control_plane.url, "MODELPORT_TOKEN": control_plane.token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2
    assert "does not fit" in cli.stderr and "modelport plan" in cli.stderr


def test_an_update_to_a_model_that_cannot_fit_leaves_the_endpoint_serving(
    control_plane: ControlPlaneProcess, llama_70b: Path, tiny_model: Path
) -> None:
    client = Client(control_plane.url, token=control_plane.token)
    client.create_endpoint("chat", model=str(tiny_model))
    deadline = time.monotonic() + 120
    while client.get_endpoint("chat").state != "running":
        assert time.monotonic() < deadline, client.get_endpoint("chat").message
        time.sleep(0.3)
    # the replica was sized by the planner: the model's context, a KV pool for 16 full sequences
    (replica,) = replica_processes(control_plane.data_dir)
    cmdline = replica.cmdline()
    assert cmdline[cmdline.index("--max-model-len") + 1] == "2048"
    assert cmdline[cmdline.index("--kv-cache-memory") + 1].endswith("B")
    with pytest.raises(ValidationError, match="does not fit"):
        client.get_endpoint("chat").update(model=str(llama_70b))
    ep = client.get_endpoint("chat")
    assert ep.repository == str(tiny_model) and ep.state == "running"
    assert replica_processes(control_plane.data_dir)[0].pid == replica.pid


def test_a_hub_model_not_pulled_yet_is_judged_from_its_headers(llama_70b: Path, tmp_path: Path) -> None:
    from tests.support.hub_standin import HubStandin

    with HubStandin({"acme/llama-70b": llama_70b}) as hub:
        env = {
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": hub.url,
            "MODELPORT_MODEL_CACHE": str(tmp_path / "cache"),
        }
        with ControlPlaneProcess(tmp_path / "data", None, "--no-demo", env=env) as cp:
            client = Client(cp.url, token=cp.token)
            with pytest.raises(ValidationError, match=r"acme/llama-70b does not fit local CPU"):
                client.create_endpoint("big", model="acme/llama-70b")
        # only the listing, the JSON files and ranged reads of the shards' headers
        assert all(
            r.path.startswith("/api/") or r.path.endswith(".json") or "range" in r.headers
            for r in hub.received
        )
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
