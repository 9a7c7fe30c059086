"""A replica of an external engine: the wrapped command line, and engine_exec becoming the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from modelport.launchers.engine_install import MARKER
from modelport.launchers.engines import Places, ReplicaSizing, launch_spec
from modelport.store.records import ModelRevision

SHOW = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'port': os.environ.get('PORT')}))"


def revision(kind: str, repository: str, config: dict[str, object] | None = None) -> ModelRevision:
    return ModelRevision(
        repository=repository,
        revision=None,
        task="text-generation",
        framework="pytorch",
        image_kind=kind,
        image_config=config or {},
        env={},
        secrets={"HF_TOKEN": "hf_x"},
        args=[],
    )


def installed(engines: Path, kind: str) -> Path:
    python = engines / f"{kind}-1.0" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    (engines / f"{kind}-1.0" / MARKER).write_text("{}")
    return python


def test_vllm_replicas_fetch_first_then_become_the_engine(tmp_path: Path) -> None:
    python = installed(tmp_path / "engines", "vllm")
    places = Places(tmp_path / "engines", tmp_path / "cache")
    plan = ReplicaSizing(
        ["--max-model-len", "4096"], ["--max-model-len", "2048"], cpu_kv_cache_bytes=3 * 2**30 + 1
    )
    spec = launch_spec("r1", "chat", revision("vllm", "acme/chat@v2"), plan, places)
    wrapper, engine = spec.command[: spec.command.index("--")], spec.command[spec.command.index("--") + 1 :]
    assert wrapper == [sys.executable, "-m", "modelport.launchers.engine_exec", "--source", "acme/chat@v2"]
    assert engine[:5] == [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", "{model_path}"]
    assert engine[-2:] == ["--max-model-len", "2048"]  # the engine's plan, not the builtin one
    assert spec.env["VLLM_CPU_KVCACHE_SPACE"] == "4" and spec.env["VLLM_CACHE_ROOT"] == str(
        tmp_path / "cache/vllm"
    )
    assert spec.env["HF_TOKEN"] == "hf_x" and "hf_x" not in " ".join(spec.command)
    assert spec.token_vars == ("VLLM_API_KEY",)  # the wrapper keeps the engine's token variable


def test_llamacpp_replicas_need_a_gguf_and_drop_port(tmp_path: Path) -> None:
    installed(tmp_path / "engines", "llamacpp")
    places = Places(tmp_path / "engines", tmp_path / "cache")
    spec = launch_spec("r1", "chat", revision("llamacpp", "/m/chat.gguf"), ReplicaSizing(), places)
    wrapper = spec.command[: spec.command.index("--")]
    assert wrapper[-3:] == ["--need-gguf", "--unset", "PORT"]
    assert spec.health_path == "/openapi.json"


def test_a_missing_engine_says_how_to_install_it(tmp_path: Path) -> None:
    places = Places(tmp_path / "engines", tmp_path / "cache")
    try:
        launch_spec("r1", "chat", revision("vllm", "acme/chat"), ReplicaSizing(), places)
    except ValueError as exc:
        assert "run `modelport engines install vllm`" in str(exc)
    else:
        raise AssertionError("launched without an engine")


def run_exec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "modelport.launchers.engine_exec", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )


def test_engine_exec_resolves_the_source_and_replaces_itself(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    done = run_exec(
        "--source", str(model), "--unset", "PORT", "--", sys.executable, "-c", SHOW, "--model={model_path}",
        env={"PORT": "9999"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["argv"] == [f"--model={model}"] and shown["port"] is None
    assert f"model ready at {model}" in done.stderr


def test_engine_exec_fails_with_the_sources_own_message(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    not_gguf = run_exec("--source", str(folder), "--need-gguf", "--", sys.executable, "-c", SHOW)
    assert not_gguf.returncode == 2 and "is not a .gguf file" in not_gguf.stderr and not not_gguf.stdout
    missing = run_exec(
        "--source", "acme/absent", "--", sys.executable, "-c", SHOW,
        env={"MODELPORT_MODEL_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and not missing.stdout
