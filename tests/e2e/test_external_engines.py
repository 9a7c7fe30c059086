"""vLLM and llama.cpp as endpoint engines, end to end, with the real engines.

Each engine is installed by the real `modelport engines install` into the test engines folder
(tests/support/engines.py: kept between runs). For each, an endpoint is created through the
control plane with minReplica 0; it starts once, goes to zero when idle, and is then called at
zero through the gateway: the OpenAI SDK's chat call is held while the engine cold-starts, then a
streamed chat, then the `text-generation` client (TGI routes the gateway translates into the
engine's OpenAI routes). The replica must be the engine itself, and pausing the endpoint must
stop it and every process it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import openai
import psutil
import pytest
from text_generation import Client as TgiClient

from modelport import Client
from modelport.sdk.errors import ValidationError
from tests.support.control_plane_process import ControlPlaneProcess, engine_processes
from tests.support.engines import INSTALL_TIMEOUT_S, TEST_ENGINES, ensure_engine

START_TIMEOUT_S = 600  # vLLM compiles its graphs on first start: 54-88 s on this machine, alone
HOLD = {"x-scale-up-timeout": "600"}


def exercise(cp: ControlPlaneProcess, name: str, model: str, image: dict[str, object], marker: str) -> float:
    """The whole life of an endpoint on one engine; returns the cold start at zero in seconds."""
    client = Client(cp.url, token=cp.token)
    ep = client.create_endpoint(
        name, model=model, image=image, min_replicas=0, max_replicas=1, scale_to_zero_after_s=5
    )
    cp.wait_for(name, "running", timeout=START_TIMEOUT_S, ready=1)
    cp.wait_for(name, "scaledToZero", timeout=120, ready=0)

    sdk = openai.OpenAI(
        base_url=f"{ep.url}/v1",
        api_key=cp.token,
        max_retries=0,
        timeout=START_TIMEOUT_S,
        default_headers=HOLD,
    )
    started = time.monotonic()
    # any model name: the endpoint's URL names the model, and the gateway renames it for the engine
    reply = sdk.chat.completions.create(
        model="dummy", messages=[{"role": "user", "content": "Say hello"}], max_tokens=8
    )
    cold_start = time.monotonic() - started
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert reply.model == name

    stream = sdk.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "Count to five"}], max_tokens=12, stream=True
    )
    chunks = list(stream)
    assert chunks and chunks[-1].choices and chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(not c.usage for c in chunks)  # the usage chunk the gateway asked for is not shown

    tgi = TgiClient(ep.url, headers={"authorization": f"Bearer {cp.token}"}, timeout=120)
    answer = tgi.generate("The sky is", max_new_tokens=6)
    assert answer.details.finish_reason in ("length", "eos_token")
    assert answer.details.generated_tokens >= 1
    events = list(tgi.generate_stream("The sea is", max_new_tokens=6))
    assert events and events[-1].generated_text is not None and events[-1].details is not None

    # the replica is the engine's own process (engine_exec became it) and whatever it started
    family = engine_processes(cp.data_dir)
    assert any(marker in " ".join(p.cmdline()) for p in family), [p.cmdline() for p in family]

    client.get_endpoint(name).pause()
    deadline = time.monotonic() + 90
    while alive := [p.pid for p in family if _alive(p)]:
        assert time.monotonic() < deadline, f"still running after pause: {alive}"
        time.sleep(0.3)
    return cold_start


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def control_plane(tmp_path: Path) -> ControlPlaneProcess:
    return ControlPlaneProcess(
        tmp_path / "data", None, "--no-demo", env={"MODELPORT_ENGINES_DIR": str(TEST_ENGINES)}
    )


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 900)  # the first run installs the engine
def test_vllm_endpoint_from_zero_with_openai_and_tgi_clients(tmp_path: Path, tiny_model: Path) -> None:
    ensure_engine("vllm")
    with control_plane(tmp_path) as cp:
        cold = exercise(cp, "on-vllm", str(tiny_model), {"vllm": {}}, "vllm.entrypoints.openai.api_server")
        print(f"vLLM cold start at zero through the gateway: {cold:.1f} s")


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 900)
def test_llamacpp_endpoint_serves_a_converted_gguf_from_zero(tmp_path: Path, tiny_model: Path) -> None:
    ensure_engine("llamacpp")
    gguf = tmp_path / "tiny-f16.gguf"
    convert = [
        sys.executable,
        "-m",
        "modelport.cli.main",
        "models",
        "convert",
        str(tiny_model),
        "--to",
        "gguf",
    ]
    done = subprocess.run(
        [*convert, "--quant", "f16", "--out", str(gguf)],
        env={**os.environ, "MODELPORT_ENGINES_DIR": str(TEST_ENGINES)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with control_plane(tmp_path) as cp:
        cold = exercise(cp, "on-llamacpp", str(gguf), {"llamacpp": {}}, "llama_cpp.server")
        print(f"llama.cpp cold start at zero through the gateway: {cold:.1f} s")


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 600)
def test_llamacpp_serves_the_ggufs_own_context_not_2048(tmp_path: Path) -> None:
    """A 3,400-token prompt to a 4,096-context GGUF (llama-cpp-python's default n_ctx is 2,048)."""
    import dataclasses

    from transformers import AutoTokenizer

    from modelport.models.demo import TINY, build_llama

    ensure_engine("llamacpp")
    folder = build_llama(tmp_path / "long", dataclasses.replace(TINY, max_position_embeddings=4096))
    gguf = tmp_path / "long-f16.gguf"
    convert = [sys.executable, "-m", "modelport.cli.main", "models", "convert", str(folder), "--to", "gguf"]
    done = subprocess.run(
        [*convert, "--quant", "f16", "--out", str(gguf)],
        env={**os.environ, "MODELPORT_ENGINES_DIR": str(TEST_ENGINES)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    prompt = "alpha beta gamma delta "
    while len(tokenizer.encode(prompt)) < 3400:
        prompt += "epsilon zeta eta theta iota kappa "
    with control_plane(tmp_path) as cp:
        ep = Client(cp.url, token=cp.token).create_endpoint("long", model=str(gguf), image={"llamacpp": {}})
        cp.wait_for("long", "running", timeout=START_TIMEOUT_S, ready=1)
        sdk = openai.OpenAI(base_url=f"{ep.url}/v1", api_key=cp.token, max_retries=0, timeout=300)
        reply = sdk.completions.create(model="long", prompt=prompt, max_tokens=4)
    assert reply.usage is not None and reply.usage.prompt_tokens >= 3400


def test_an_engine_that_is_not_installed_is_refused_at_create(tmp_path: Path, tiny_model: Path) -> None:
    empty = tmp_path / "no-engines"
    with ControlPlaneProcess(
        tmp_path / "data", None, "--no-demo", env={"MODELPORT_ENGINES_DIR": str(empty)}
    ) as cp:
        client = Client(cp.url, token=cp.token)
        with pytest.raises(ValidationError) as info:
            client.create_endpoint("nope", model=str(tiny_model), image={"vllm": {}})
        assert info.value.status_code == 422 and info.value.field == "model.image"
        assert "run `modelport engines install vllm`" in info.value.message
        assert client.list_endpoints() == []
