"""Pull from the Hub (a local stand-in: the real Hub is unreachable from these machines) and from
a real S3-compatible server with `modelport models pull`, cut both, and serve from the cache.

Every step is the CLI or the control plane as a user runs them, in child processes, with the
real huggingface_hub and boto3 talking HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from modelport.sdk import Client
from tests.support.control_plane_process import ControlPlaneProcess
from tests.support.hub_standin import HubStandin
from tests.support.s3_server import CREDENTIALS, s3_server, upload_folder
from tests.support.server_process import free_port

DEAD = f"http://127.0.0.1:{free_port()}"  # nothing listens here: the "network" once cut


def modelport(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def pickle_only_copy(model: Path, dest: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    dest.mkdir()
    for item in model.iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            (dest / item.name).write_bytes(item.read_bytes())
    torch.save(load_file(str(model / "model.safetensors")), dest / "pytorch_model.bin")
    return dest


def wait_running(client: Client, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ep = client.get_endpoint(name)
        if ep.state == "running":
            return
        assert ep.state != "failed", ep.message
        time.sleep(0.3)
    raise TimeoutError(f"{name} not running after {timeout} s: {client.get_endpoint(name).message}")


def test_pull_from_hub_and_s3_then_serve_with_the_network_cut(tiny_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = {"MODELPORT_MODEL_CACHE": str(cache), "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    with HubStandin({"acme/tiny-chat": tiny_model}) as hub, s3_server() as s3_url:
        upload_folder(s3_url, tiny_model, "weights", "acme/tiny")
        env = {**base, "HF_ENDPOINT": hub.url, "MODELPORT_S3_ENDPOINT_URL": s3_url, **CREDENTIALS}
        from_hub = modelport(env, "models", "pull", "acme/tiny-chat", "--json")
        assert from_hub.returncode == 0, from_hub.stderr
        from_s3 = modelport(env, "models", "pull", "s3://weights/acme/tiny", "--json")
        assert from_s3.returncode == 0, from_s3.stderr
        hub_pull, s3_pull = json.loads(from_hub.stdout), json.loads(from_s3.stdout)
        assert hub_pull["revision"] == hub.commit("acme/tiny-chat")
        assert hub_pull["downloaded_bytes"] == hub_pull["bytes"] > 0
        assert s3_pull["downloaded_bytes"] == s3_pull["bytes"] == hub_pull["bytes"]
        # the same files from two sources are stored once
        assert len(list((cache / "blobs" / "sha256").iterdir())) == hub_pull["files"] == s3_pull["files"]
    # both servers are gone; point the clients at a port where nothing listens, and allow the network
    cut = {**base, "HF_ENDPOINT": DEAD, "MODELPORT_S3_ENDPOINT_URL": DEAD, **CREDENTIALS}
    listed = json.loads(modelport(cut, "models", "list", "--json").stdout)
    assert {m["source"] for m in listed} == {"acme/tiny-chat", "s3://weights/acme/tiny"}
    verified = modelport(cut, "models", "verify", "--json")
    assert verified.returncode == 0 and all(r["problems"] == [] for r in json.loads(verified.stdout))
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo", env=cut) as cp:
        client = Client(cp.url, token=cp.token)
        client.create_endpoint("from-hub", model="acme/tiny-chat", engine_args=["--kv-cache-memory", "8MiB"])
        client.create_endpoint(
            "from-s3", model="s3://weights/acme/tiny", engine_args=["--kv-cache-memory", "8MiB"]
        )
        for name in ("from-hub", "from-s3"):
            wait_running(client, name)
            ep = client.get_endpoint(name)
            reply = openai.OpenAI(
                base_url=f"{ep.url}/v1", api_key=cp.token, max_retries=0
            ).chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            assert reply.usage is not None and reply.usage.completion_tokens > 0
        logs = "\n".join(p.read_text() for p in (tmp_path / "data").rglob("*.log"))
        assert "models pull" not in logs and "cannot reach" not in logs


def test_a_pickle_only_model_is_refused_with_the_reason_and_the_opt_in(
    tiny_model: Path, tmp_path: Path
) -> None:
    pickled = pickle_only_copy(tiny_model, tmp_path / "pickled")
    cache = tmp_path / "cache"
    with HubStandin({"acme/pickled": pickled}) as hub:
        env = {"MODELPORT_MODEL_CACHE": str(cache), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url}
        refused = modelport(env, "models", "pull", "acme/pickled")
        assert refused.returncode == 1
        message = " ".join(refused.stderr.split())
        assert "pytorch_model.bin" in message and "execute arbitrary code" in message
        assert "--allow-pickle" in message
        assert not any(p.is_file() for p in cache.rglob("*") if "locks" not in p.parts)
        assert not [r for r in hub.requests if "/resolve/" in r[1]]  # refused before downloading anything
        allowed = modelport(env, "models", "pull", "acme/pickled", "--allow-pickle", "--json")
        assert allowed.returncode == 0, allowed.stderr
        assert (Path(json.loads(allowed.stdout)["path"]) / "pytorch_model.bin").exists()
    # the same refusal for a local folder, from `serve` and from the control plane
    served = modelport({}, "serve", str(pickled), "--port", str(free_port()))
    assert served.returncode == 2 and "--allow-pickle" in served.stderr
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        client = Client(cp.url, token=cp.token)
        with pytest.raises(Exception, match="pickle") as info:
            client.create_endpoint("pickled", model=str(pickled))
        assert "allow-pickle" in str(info.value)
        ep = client.create_endpoint("pickled", model=str(pickled), engine_args=["--allow-pickle"])
        assert ep.name == "pickled"


def test_gated_repositories_need_hf_token_and_a_bad_revision_is_named(
    tiny_model: Path, tmp_path: Path
) -> None:
    with HubStandin({"acme/gated": tiny_model}, token="hf_modelport_test") as hub:
        env = {
            "MODELPORT_MODEL_CACHE": str(tmp_path / "cache"),
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": hub.url,
        }
        denied = modelport(env, "models", "pull", "acme/gated")
        assert denied.returncode == 1 and "HF_TOKEN" in denied.stderr
        wrong_revision = modelport(
            {**env, "HF_TOKEN": "hf_modelport_test"}, "models", "pull", "acme/gated@v9"
        )
        assert wrong_revision.returncode == 1 and "no revision 'v9'" in wrong_revision.stderr
        allowed = modelport(
            {**env, "HF_TOKEN": "hf_modelport_test"}, "models", "pull", "acme/gated", "--json"
        )
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["revision"] == hub.commit("acme/gated")
        assert "hf_modelport_test" not in allowed.stderr + allowed.stdout


def test_replicas_pull_what_is_not_cached_with_the_endpoint_env_and_secrets(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The control plane holds no Hub token and points S3 at a dead port: each endpoint brings its
    own (secrets.HF_TOKEN; env.MODELPORT_S3_ENDPOINT_URL), and its first replica pulls with them."""
    cache = tmp_path / "cache"
    token = "hf_endpoint_secret_1234"
    with HubStandin({"acme/gated": tiny_model}, token=token) as hub, s3_server() as s3_url:
        upload_folder(s3_url, tiny_model, "private", "m")
        plane_env = {
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": hub.url,
            "MODELPORT_MODEL_CACHE": str(cache),
            "MODELPORT_S3_ENDPOINT_URL": DEAD,
        }
        with ControlPlaneProcess(tmp_path / "data", None, "--no-demo", env=plane_env) as cp:
            client = Client(cp.url, token=cp.token)
            small_kv = ["--kv-cache-memory", "8MiB"]
            # first without the token (nothing cached yet): its replica cannot pull, the endpoint fails
            client.create_endpoint("no-token", model="acme/gated", engine_args=small_kv)
            deadline = time.monotonic() + 120
            while client.get_endpoint("no-token").state != "failed":
                assert time.monotonic() < deadline, client.get_endpoint("no-token").message
                time.sleep(0.5)
            failure = client.get_endpoint("no-token").message
            assert "is gated" in failure and "HF_TOKEN" in failure
            client.create_endpoint(
                "gated", model="acme/gated", secrets={"HF_TOKEN": token}, engine_args=small_kv
            )
            client.create_endpoint(
                "bucket",
                model="s3://private/m",
                env={"MODELPORT_S3_ENDPOINT_URL": s3_url},
                engine_args=small_kv,
            )
            for name in ("gated", "bucket"):
                wait_running(client, name)
            logs = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "data").rglob("*.log"))
            assert token not in logs
    listed = json.loads(modelport({"MODELPORT_MODEL_CACHE": str(cache)}, "models", "list", "--json").stdout)
    assert {m["source"] for m in listed} == {"acme/gated", "s3://private/m"}
