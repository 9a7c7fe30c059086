"""`modelport plan` on a Hub id and an s3:// source, reading config and safetensors headers only.

The model is Llama-3.1-70B as a Hub-shaped header-only folder (the real config, 30 shards cut
after their headers, the index), served by the Hub stand-in and uploaded to a real S3-compatible
server (moto). Each plan runs as the CLI in a child process with the real huggingface_hub and
boto3, and must give the local folder's answers without a whole-file GET or a byte in the cache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.models.cache import ModelCache
from modelport.models.inspect import inspect_model
from modelport.models.pull import pull
from modelport.models.remote_headers import fetch_plan_folder
from modelport.models.sources import parse_source
from tests.support.hub_standin import HubStandin
from tests.support.model_headers import SMALL_LLAMA, llama_tensors, write_gguf, write_hub_folder
from tests.support.s3_server import CREDENTIALS, s3_server, upload_folder
from tests.support.server_process import free_port
from tests.unit.models.public_models import MODELS

LLAMA_70B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.1-70B")
DEAD = f"http://127.0.0.1:{free_port()}"  # nothing listens here
SMALL = SMALL_LLAMA


@pytest.fixture(scope="module")
def llama_70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "Llama-3.1-70B"
    total = write_hub_folder(folder, LLAMA_70B.config, llama_tensors(LLAMA_70B.config), shards=30)
    assert total == LLAMA_70B.checkpoint_bytes
    return folder


@pytest.fixture(scope="module")
def split_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gguf")
    write_gguf(folder / "chat.gguf", tokens=1000, split_max_tensors=6)
    return folder


@pytest.fixture(scope="module")
def sources(llama_70b: Path, split_gguf: Path) -> Iterator[tuple[HubStandin, str]]:
    repos = {"acme/llama-70b": llama_70b, "acme/chat-GGUF": split_gguf}
    with HubStandin(repos) as hub, s3_server() as s3_url:
        upload_folder(s3_url, llama_70b, "bucket", "llama-70b")
        upload_folder(s3_url, split_gguf, "bucket", "gguf")
        yield hub, s3_url


def modelport(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", *args],
        env={**_without_telemetry_opt_out(), "MODELPORT_HARDWARE_PRICES": "", "HF_HUB_OFFLINE": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def fits(data: dict[str, Any]) -> dict[str, tuple[bool, int, bool]]:
    return {e["hardware"]: (e["fits"], e["max_sequences"], e["meets_concurrency"]) for e in data["evaluated"]}


def stored_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_hub_and_s3_plans_equal_the_local_folder_from_headers_alone(
    llama_70b: Path, sources: tuple[HubStandin, str], tmp_path: Path
) -> None:
    hub, s3_url = sources
    cache = tmp_path / "cache"
    env = {
        "MODELPORT_MODEL_CACHE": str(cache),
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "MODELPORT_S3_ENDPOINT_URL": s3_url,
        **CREDENTIALS,
    }
    plans = {}
    hub.received.clear()
    for model in (str(llama_70b), "acme/llama-70b", "s3://bucket/llama-70b"):
        out = modelport(env, "plan", model, "--context", "8192", "--json")
        assert out.returncode == 0, out.stderr
        plans[model] = json.loads(out.stdout)
    local = plans.pop(str(llama_70b))
    assert local["model"]["parameters"] == 70_553_706_496
    for model, data in plans.items():
        assert data["model"]["source"] == model
        assert data["model"]["read_from"] == "remote headers"
        assert data["model"]["parameters"] == 70_553_706_496
        assert data["model"]["checkpoint_bytes"] == local["model"]["checkpoint_bytes"] == 141_107_412_992
        assert data["model"]["parameter_source"] == "safetensors headers"
        assert fits(data) == fits(local)
        assert data["cheapest"] == local["cheapest"]
        assert data["notes"][0].startswith("planned from the source's config and weight-file headers")
    assert stored_files(cache) == []

    # the Hub saw one listing, two JSON files and a ranged read of each shard (on the Hub, then the CDN)
    shards = set()
    for request in hub.received:
        # huggingface_hub fetches an "agent harnesses" registry for its user agent unless telemetry
        # is off; the CLI turns it off itself (the test env does not), so no such request is made
        assert request.path != "/api/agent-harnesses"
        assert request.method == "GET", request
        name = request.path.rsplit("/", 1)[-1]
        if request.path.startswith("/api/"):
            assert request.path == "/api/models/acme/llama-70b"  # the listing
        elif name.endswith(".safetensors"):
            span = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("range", ""))
            assert span is not None, f"a whole-file GET: {request}"
            assert int(span[1]) == 0 and int(span[2]) < 100_000
            shards.add(name)
        else:
            assert name in ("config.json", "model.safetensors.index.json"), request
    assert shards == {f"model-{i:05d}-of-00030.safetensors" for i in range(1, 31)}
    assert sum(r.path.startswith("/lfs/") for r in hub.received) == 30


def test_s3_objects_are_read_by_range_only(
    sources: tuple[HubStandin, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    _, s3_url = sources
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", s3_url)
    ranges: list[tuple[str, str | None]] = []

    def record(request: Any, **_: Any) -> None:
        span = request.headers.get("Range")
        ranges.append((request.url.rsplit("/", 1)[-1], span.decode() if isinstance(span, bytes) else span))

    boto3.setup_default_session()  # clients take a copy of their session's event hooks
    boto3.DEFAULT_SESSION.events.register("before-send.s3.GetObject", record)
    try:
        folder = fetch_plan_folder(parse_source("s3://bucket/llama-70b"), tmp_path / "plan")
    finally:
        boto3.DEFAULT_SESSION = None
    assert len(ranges) == 30 + 2  # every shard, config.json and the index
    for name, span in ranges:
        match = re.fullmatch(r"bytes=0-(\d+)", span or "")
        assert match is not None and int(match[1]) < 100_000, f"GET {name} with Range {span}"
    assert sum(p.stat().st_size for p in folder.iterdir()) < 200_000
    assert inspect_model(folder).parameters.total == 70_553_706_496


def test_one_shard_of_a_split_gguf_plans_the_whole_model_from_headers(
    split_gguf: Path, sources: tuple[HubStandin, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, s3_url = sources
    first = "chat-00001-of-00002.gguf"
    local = inspect_model(split_gguf / first)
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", s3_url)
    from_s3 = inspect_model(fetch_plan_folder(parse_source(f"s3://bucket/gguf/{first}"), tmp_path / "s3"))
    assert (from_s3.parameters, from_s3.checkpoint_bytes) == (local.parameters, local.checkpoint_bytes)
    env = {"MODELPORT_MODEL_CACHE": str(tmp_path / "cache"), "HF_ENDPOINT": hub.url}
    hub.received.clear()
    out = modelport(env, "plan", f"acme/chat-GGUF/{first}", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    model = data["model"]
    assert (model["source"], model["parameter_source"]) == (f"acme/chat-GGUF/{first}", "gguf")
    assert model["parameters"] == local.parameters.total
    gets = [r for r in hub.received if r.path.endswith(".gguf")]
    assert len(gets) == 4 and all(r.headers.get("range", "").startswith("bytes=0-") for r in gets)


def test_the_table_names_the_source_as_typed(sources: tuple[HubStandin, str], tmp_path: Path) -> None:
    hub, _ = sources
    env = {"MODELPORT_MODEL_CACHE": str(tmp_path / "cache"), "HF_ENDPOINT": hub.url, "COLUMNS": "120"}
    out = modelport(env, "plan", "acme/llama-70b@main", "--context", "8192", "--concurrency", "16")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("acme/llama-70b@main · LlamaForCausalLM · 80 layers")
    assert "70.55B parameters · from safetensors headers · weights 141.1 GB at bf16" in out.stdout
    assert "vllm serve acme/llama-70b@main" in out.stdout
    assert "no weights were downloaded" in out.stdout


def test_a_pulled_source_is_planned_from_the_cache_without_the_network(
    sources: tuple[HubStandin, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, s3_url = sources
    small = tmp_path / "small"
    data_bytes = write_hub_folder(small, SMALL, llama_tensors(SMALL))
    weights = small / "model.safetensors"
    os.truncate(weights, weights.stat().st_size + data_bytes)  # a whole file: header + zeroed data
    upload_folder(s3_url, small, "bucket", "small")
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", s3_url)
    pulled = pull(parse_source("s3://bucket/small"), ModelCache(tmp_path / "cache"))
    env = {"MODELPORT_MODEL_CACHE": str(tmp_path / "cache"), "MODELPORT_S3_ENDPOINT_URL": DEAD, **CREDENTIALS}
    out = modelport(env, "plan", "s3://bucket/small", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["model"]["source"], data["model"]["read_from"]) == ("s3://bucket/small", "weight cache")
    assert data["model"]["checkpoint_bytes"] == data_bytes
    assert pulled.manifest.total_bytes > data_bytes


def test_sources_that_cannot_be_planned_say_what_to_do(
    sources: tuple[HubStandin, str], tmp_path: Path
) -> None:
    hub, s3_url = sources
    env = {
        "MODELPORT_MODEL_CACHE": str(tmp_path / "cache"),
        "HF_ENDPOINT": hub.url,
        "MODELPORT_S3_ENDPOINT_URL": s3_url,
        **CREDENTIALS,
    }
    missing = modelport(env, "plan", "acme/nothing-here")
    assert missing.returncode == 1 and "acme/nothing-here" in missing.stderr and "HF_TOKEN" in missing.stderr
    empty = modelport(env, "plan", "s3://bucket/nothing-here")
    assert empty.returncode == 1 and "no objects under this prefix" in empty.stderr
    bad = modelport(env, "plan", "not a model")
    assert bad.returncode == 2 and "not a local model folder" in bad.stderr


def _without_telemetry_opt_out() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_TELEMETRY"}
