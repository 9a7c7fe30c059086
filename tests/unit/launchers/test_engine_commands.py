"""The external engines' command lines, as pure data: argv, environment, health route, APIs.

Nothing is started here; the flag names were read from each engine's sources (docs/engines.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelport.launchers.engine_install import MARKER, EngineInstall, engine_path, find_engine
from modelport.launchers.llamacpp import llamacpp_apis, llamacpp_launch
from modelport.launchers.sglang import sglang_apis, sglang_launch
from modelport.launchers.tei import tei_apis, tei_launch
from modelport.launchers.tgi import tgi_apis, tgi_launch
from modelport.launchers.vllm import vllm_apis, vllm_launch
from modelport.runtime.base import LaunchSpec
from modelport.store.records import ModelRevision

# What the planner gives a 2-GPU instance (models/planner.py `_vllm_flags`)
GPU_PLAN = (
    "--max-model-len", "8192", "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "2",
    "--kv-cache-dtype", "fp8", "--dtype", "bfloat16",
)  # fmt: skip
REPLICA_DIR = Path("/data/replicas/r1")
SECRET = "hf_do_not_show"
BASE_PATH = "/usr/local/bin:/usr/bin"


def revision(kind: str, *args: str, config: dict[str, Any] | None = None) -> ModelRevision:
    return ModelRevision(
        repository="acme/chat-8b",
        revision=None,
        task="text-generation",
        framework="pytorch",
        image_kind=kind,
        image_config=config or {},
        env={"LOG_LEVEL": "debug"},
        secrets={"HF_TOKEN": SECRET},
        args=list(args),
    )


def venv(kind: str, version: str = "1.0") -> EngineInstall:
    return EngineInstall(kind, f"/eng/{kind}-{version}/bin/python", None, version)


TGI = EngineInstall("tgi", "/eng/tgi-3.3/bin/python", "/eng/tgi-3.3/bin/text-generation-launcher", "3.3")
TEI = EngineInstall("tei", None, "/eng/tei-1.8/bin/text-embeddings-router", "1.8")


def launch_vllm(rev: ModelRevision, plan: tuple[str, ...] = GPU_PLAN, **kw: Any) -> LaunchSpec:
    return vllm_launch(
        "r1", "chat", rev, "/models/chat-8b", venv("vllm"), plan, cache_root=REPLICA_DIR / "vllm-cache",
        inherited_path=BASE_PATH, **kw,
    )  # fmt: skip


def launch_llamacpp(rev: ModelRevision, plan: tuple[str, ...] = GPU_PLAN, **kw: Any) -> LaunchSpec:
    return llamacpp_launch(
        "r1", "chat", rev, "/models/chat-8b-Q4_K_M.gguf", venv("llamacpp"), plan, cpu_threads=2,
        inherited_path=BASE_PATH, **kw,
    )  # fmt: skip


def launch_tgi(rev: ModelRevision, plan: tuple[str, ...] = GPU_PLAN) -> LaunchSpec:
    return tgi_launch(
        "r1", "chat", rev, "/models/chat-8b", TGI, plan, replica_dir=REPLICA_DIR, inherited_path=BASE_PATH
    )


def launch_sglang(rev: ModelRevision, plan: tuple[str, ...] = GPU_PLAN) -> LaunchSpec:
    return sglang_launch("r1", "chat", rev, "/models/chat-8b", venv("sglang"), plan, inherited_path=BASE_PATH)


def launch_tei(rev: ModelRevision, plan: tuple[str, ...] = ()) -> LaunchSpec:
    return tei_launch(
        "r1", "embed", rev, "/models/minilm", TEI, plan, replica_dir=REPLICA_DIR, inherited_path=BASE_PATH
    )


LAUNCHERS: dict[str, Callable[[ModelRevision], LaunchSpec]] = {
    "vllm": launch_vllm,
    "llamacpp": launch_llamacpp,
    "tgi": launch_tgi,
    "sglang": launch_sglang,
    "tei": launch_tei,
}


def env_of(kind: str, **extra: str) -> dict[str, str]:
    bin_dir = {"tgi": "/eng/tgi-3.3/bin", "tei": "/eng/tei-1.8/bin"}.get(kind, f"/eng/{kind}-1.0/bin")
    return {
        "PATH": f"{bin_dir}:{BASE_PATH}",
        "HF_HUB_OFFLINE": "1",
        **extra,
        "LOG_LEVEL": "debug",
        "HF_TOKEN": SECRET,
    }


# ---- vLLM


def test_vllm_command_env_and_health() -> None:
    spec = launch_vllm(revision("vllm"))
    assert spec.command == [
        "/eng/vllm-1.0/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/models/chat-8b", "--host", "127.0.0.1", "--port", "{port}",
        "--served-model-name", "chat",
        "--max-model-len", "8192", "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "2",
        "--kv-cache-dtype", "fp8", "--dtype", "bfloat16",
    ]  # fmt: skip
    assert spec.env == env_of("vllm", VLLM_CACHE_ROOT="/data/replicas/r1/vllm-cache", VLLM_NO_USAGE_STATS="1")
    assert spec.health_path == "/health"
    assert spec.replica_id == "r1"
    assert spec.token_vars == ("VLLM_API_KEY",)  # the replica's token: vLLM guards /v1 with it


def test_vllm_user_args_replace_the_planned_flags_they_name() -> None:
    rev = revision("vllm", "--max_model_len=4096", "-tp", "1", "--enforce-eager")
    assert launch_vllm(rev).command[11:] == [
        "--gpu-memory-utilization", "0.9", "--kv-cache-dtype", "fp8", "--dtype", "bfloat16",
        "--max_model_len=4096", "-tp", "1", "--enforce-eager",
    ]  # fmt: skip


def test_vllm_on_cpu_sizes_its_kv_cache_in_whole_gib() -> None:
    spec = launch_vllm(revision("vllm"), ("--max-model-len", "1024"), cpu_kv_cache_bytes=3 * 2**29)
    assert spec.env["VLLM_CPU_KVCACHE_SPACE"] == "2"  # 1.5 GiB, rounded up
    assert launch_vllm(revision("vllm"), (), cpu_kv_cache_bytes=1).env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    # vllm-cpu lets the variable overwrite the flag, so a user's flag keeps it out
    user_sized = revision("vllm", "--kv-cache-memory-bytes", "268435456")
    assert "VLLM_CPU_KVCACHE_SPACE" not in launch_vllm(user_sized, (), cpu_kv_cache_bytes=2**30).env
    assert "VLLM_CPU_KVCACHE_SPACE" not in launch_vllm(revision("vllm")).env


def test_vllm_on_a_small_cpu_computes_on_every_core() -> None:
    small = launch_vllm(revision("vllm"), (), cpu_kv_cache_bytes=2**30, cpu_count=2)
    assert small.env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert (
        "VLLM_CPU_NUM_OF_RESERVED_CPU"
        not in launch_vllm(revision("vllm"), (), cpu_kv_cache_bytes=1, cpu_count=8).env
    )
    assert (
        "VLLM_CPU_NUM_OF_RESERVED_CPU" not in launch_vllm(revision("vllm"), cpu_count=2).env
    )  # a GPU replica


def test_vllm_sleep_mode_and_speculative_decoding_from_the_image_config() -> None:
    config = {"sleepMode": True, "speculativeModel": "/models/draft-1b", "numSpeculativeTokens": 4}
    spec = launch_vllm(revision("vllm", config=config), ())
    assert spec.command[11:] == [
        "--enable-sleep-mode",
        "--speculative-config",
        '{"model": "/models/draft-1b", "num_speculative_tokens": 4}',
    ]
    assert spec.env["VLLM_SERVER_DEV_MODE"] == "1"
    ngram = launch_vllm(revision("vllm", config={"speculativeModel": "ngram"}), ())
    assert json.loads(ngram.command[-1]) == {"model": "ngram"}
    assert "VLLM_SERVER_DEV_MODE" not in ngram.env


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sleepMode": "yes"}, "sleepMode must be true or false"),
        ({"numSpeculativeTokens": 3}, "speculativeModel must name a draft model"),
        ({"speculativeModel": "/d", "numSpeculativeTokens": 0}, "numSpeculativeTokens must be a positive"),
        ({"speculativeModel": "/d", "numSpeculativeTokens": True}, "numSpeculativeTokens must be a positive"),
    ],
)
def test_vllm_refuses_bad_image_settings(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        launch_vllm(revision("vllm", config=config))


@pytest.mark.parametrize("flag", ["--speculative-config", "-sc"])
def test_vllm_user_speculative_config_wins(flag: str) -> None:
    rev = revision("vllm", flag, '{"method": "ngram"}', config={"speculativeModel": "/d"})
    assert launch_vllm(rev, ()).command[11:] == [flag, '{"method": "ngram"}']


# ---- llama.cpp


def test_llamacpp_command_on_gpus() -> None:
    spec = launch_llamacpp(revision("llamacpp"))
    assert spec.command == [
        "/eng/llamacpp-1.0/bin/python", "-m", "llama_cpp.server",
        "--model", "/models/chat-8b-Q4_K_M.gguf", "--host", "127.0.0.1", "--port", "{port}",
        "--model_alias", "chat",
        "--n_ctx", "8192", "--n_gpu_layers", "-1", "--n_threads", "2", "--interrupt_requests", "False",
    ]  # fmt: skip
    assert spec.env == {**env_of("llamacpp"), "HOST": "127.0.0.1"}
    assert spec.health_path == "/openapi.json"  # /v1/models waits on the generation lock
    assert spec.token_vars == ("API_KEY",)  # llama-cpp-python's api_key setting, by its env name


def test_llamacpp_on_cpu_keeps_every_layer_on_the_cpu() -> None:
    spec = launch_llamacpp(revision("llamacpp"), ("--max-model-len", "2048"))
    assert spec.command[11:] == ["--n_ctx", "2048", "--n_threads", "2", "--interrupt_requests", "False"]


def test_llamacpp_without_a_planned_context_gets_the_ggufs_own() -> None:
    # never llama-cpp-python's default of 2048: 0 is llama.cpp's "the context the GGUF says"
    for plan in ((), ("--gpu-memory-utilization", "0.9")):
        argv = launch_llamacpp(revision("llamacpp"), plan).command
        assert argv.count("--n_ctx") == 1 and argv[argv.index("--n_ctx") + 1] == "0", argv
    argv = launch_llamacpp(revision("llamacpp", "--n_ctx=1024"), ()).command
    assert argv[11:] == ["--n_threads", "2", "--interrupt_requests", "False", "--n_ctx=1024"]  # the user's


def test_llamacpp_user_args_override_planned_and_default_flags() -> None:
    rev = revision("llamacpp", "--n_ctx", "4096", "--n_threads", "8", "--n_gpu_layers", "20")
    assert launch_llamacpp(rev).command[11:] == [
        "--interrupt_requests", "False", "--n_ctx", "4096", "--n_threads", "8", "--n_gpu_layers", "20"
    ]  # fmt: skip


@pytest.mark.parametrize("path", ["/models/chat-8b", "/models/chat-8b/model.safetensors"])
def test_llamacpp_refuses_anything_but_a_gguf_file(path: str) -> None:
    with pytest.raises(ValueError, match=r"single GGUF file.*\.gguf file.*convert_hf_to_gguf\.py"):
        llamacpp_launch("r1", "chat", revision("llamacpp"), path, venv("llamacpp"), inherited_path=BASE_PATH)


# ---- TGI


def test_tgi_command_maps_the_plan() -> None:
    spec = launch_tgi(revision("tgi"))
    assert spec.command == [
        "/eng/tgi-3.3/bin/text-generation-launcher",
        "--model-id", "/models/chat-8b", "--hostname", "127.0.0.1", "--port", "{port}",
        "--max-input-tokens", "8191", "--max-total-tokens", "8192", "--num-shard", "2",
        "--cuda-memory-fraction", "0.9", "--kv-cache-dtype", "fp8_e4m3fn", "--dtype", "bfloat16",
        "--shard-uds-path", "/data/replicas/r1/tgi-shard", "--prometheus-port", "0", "--usage-stats", "off",
    ]  # fmt: skip
    assert spec.env == env_of("tgi")  # its bin folder first: the launcher finds the server and router there
    assert spec.health_path == "/health"


def test_tgi_quantizes_without_a_dtype_and_admits_the_planned_concurrency() -> None:
    plan = ("--max-model-len", "4096", "--tensor-parallel-size", "1", "--quantization", "fp8",
            "--dtype", "float16", "--max-num-seqs", "512")  # fmt: skip
    assert launch_tgi(revision("tgi"), plan).command[7:17] == [
        "--max-input-tokens", "4095", "--max-total-tokens", "4096", "--num-shard", "1",
        "--quantize", "fp8", "--max-concurrent-requests", "512",
    ]  # fmt: skip


def test_tgi_user_token_limits_replace_both_planned_ones() -> None:
    rev = revision("tgi", "--max-total-tokens", "2048", "--dtype", "float16")
    assert launch_tgi(rev).command[7:] == [
        "--num-shard", "2", "--cuda-memory-fraction", "0.9", "--kv-cache-dtype", "fp8_e4m3fn",
        "--shard-uds-path", "/data/replicas/r1/tgi-shard", "--prometheus-port", "0", "--usage-stats", "off",
        "--max-total-tokens", "2048", "--dtype", "float16",
    ]  # fmt: skip


def test_tgi_without_a_plan_uses_one_shard() -> None:
    assert launch_tgi(revision("tgi"), ()).command[7:9] == ["--num-shard", "1"]


def test_tgi_refuses_a_quantization_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="TGI has no gguf quantization"):
        launch_tgi(revision("tgi"), ("--quantization", "gguf"))


def test_tgi_refuses_a_socket_path_too_long_for_linux() -> None:
    with pytest.raises(ValueError, match="too long for a unix socket"):
        tgi_launch("r1", "c", revision("tgi"), "/m", TGI, replica_dir=Path("/d" * 60), inherited_path="")


# ---- SGLang


def test_sglang_command_maps_the_plan() -> None:
    spec = launch_sglang(revision("sglang"))
    assert spec.command == [
        "/eng/sglang-1.0/bin/python", "-m", "sglang.launch_server",
        "--model-path", "/models/chat-8b", "--host", "127.0.0.1", "--port", "{port}",
        "--served-model-name", "chat",
        "--context-length", "8192", "--tp-size", "2", "--mem-fraction-static", "0.9", "--dtype", "bfloat16",
        "--kv-cache-dtype", "fp8_e4m3", "--enable-metrics",
    ]  # fmt: skip
    assert spec.env == env_of("sglang")
    assert spec.health_path == "/health"


def test_sglang_user_args_override_through_aliases() -> None:
    plan = ("--max-model-len", "4096", "--tensor-parallel-size", "2", "--max-num-seqs", "300",
            "--quantization", "fp8")  # fmt: skip
    rev = revision("sglang", "--tp", "4", "--mem-fraction-static", "0.8")
    assert launch_sglang(rev, plan).command[11:] == [
        "--context-length", "4096", "--max-running-requests", "300", "--quantization", "fp8",
        "--enable-metrics", "--tp", "4", "--mem-fraction-static", "0.8",
    ]  # fmt: skip


# ---- TEI


def test_tei_command_with_image_settings() -> None:
    rev = revision("tei", config={"maxBatchTokens": 8192, "maxClientBatchSize": 64})
    spec = launch_tei(rev, ("--dtype", "float16", "--max-num-seqs", "32"))
    assert spec.command == [
        "/eng/tei-1.8/bin/text-embeddings-router",
        "--model-id", "/models/minilm", "--hostname", "127.0.0.1", "--port", "{port}",
        "--served-model-name", "embed",
        "--dtype", "float16", "--max-batch-requests", "32",
        "--max-batch-tokens", "8192", "--max-client-batch-size", "64",
        "--uds-path", "/data/replicas/r1/tei-backend", "--prometheus-port", "0",
    ]  # fmt: skip
    assert spec.env == env_of("tei")
    assert spec.health_path == "/health"


def test_tei_ignores_plan_flags_it_has_no_equivalent_for() -> None:
    assert launch_tei(revision("tei"), GPU_PLAN).command[9:] == [
        "--uds-path", "/data/replicas/r1/tei-backend", "--prometheus-port", "0"
    ]  # fmt: skip


def test_tei_user_args_override_image_settings() -> None:
    rev = revision("tei", "--max-batch-tokens", "1024", config={"maxBatchTokens": 8192})
    assert launch_tei(rev).command[9:] == [
        "--uds-path", "/data/replicas/r1/tei-backend", "--prometheus-port", "0", "--max-batch-tokens", "1024"
    ]  # fmt: skip


@pytest.mark.parametrize("value", [0, -1, "16384", True, 1.5])
def test_tei_refuses_bad_image_settings(value: object) -> None:
    with pytest.raises(ValueError, match=r"image\.tei\.maxBatchTokens must be a positive integer"):
        launch_tei(revision("tei", config={"maxBatchTokens": value}))


# ---- all engines


@pytest.mark.parametrize("kind", LAUNCHERS)
def test_secrets_reach_the_environment_never_argv(kind: str) -> None:
    spec = LAUNCHERS[kind](revision(kind))
    assert spec.env["HF_TOKEN"] == SECRET
    assert not any(SECRET in arg for arg in spec.command)


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        ("vllm", ["--port", "9000"]),
        ("vllm", ["--served_model_name=x"]),
        ("llamacpp", ["--model_alias", "x"]),
        ("llamacpp", ["--config_file", "c.json"]),
        ("tgi", ["--hostname", "0.0.0.0"]),
        ("sglang", ["--model", "/other"]),
        ("tei", ["--model-id=/other"]),
    ],
)
def test_user_args_may_not_move_the_engine_off_its_model_or_address(kind: str, args: list[str]) -> None:
    with pytest.raises(ValueError, match="modelport sets the model, host, port and served name"):
        LAUNCHERS[kind](revision(kind, *args))


def test_apis_each_engine_serves() -> None:
    assert vllm_apis(revision("vllm")) == {"openai"}
    assert llamacpp_apis(revision("llamacpp")) == {"openai"}
    assert sglang_apis(revision("sglang")) == {"openai"}
    assert tgi_apis(revision("tgi")) == {"tgi", "openai"}
    assert tei_apis(revision("tei")) == {"tei", "openai"}


# ---- finding an install


def fake_program(path: Path, executable: bool = True, complete: bool = True) -> Path:
    """A stand-in entry point; `complete`: the install's marker is written, as the installer does last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    path.chmod(0o755 if executable else 0o644)
    if complete:
        (path.parent.parent / MARKER).write_text("{}")
    return path


def test_find_engine_picks_the_newest_complete_install(tmp_path: Path) -> None:
    for version in ("0.9.1", "0.10.0", "0.10.1rc1"):
        fake_program(tmp_path / f"vllm-{version}" / "bin" / "python")
    (tmp_path / "vllm-0.11.0" / "bin").mkdir(parents=True)  # unfinished: no interpreter yet
    fake_program(tmp_path / "vllm-0.13.0" / "bin" / "python", complete=False)  # unfinished: no marker
    fake_program(tmp_path / "vllm-0.12.0" / "bin" / "python", executable=False)
    fake_program(tmp_path / "vllm-nightly" / "bin" / "python")  # not a version
    fake_program(tmp_path / "sglang-9.0" / "bin" / "python")
    found = find_engine("vllm", tmp_path)
    folder = tmp_path / "vllm-0.10.1rc1"
    assert found == EngineInstall("vllm", str(folder / "bin/python"), None, "0.10.1rc1", folder)
    fake_program(tmp_path / "vllm-0.10.1" / "bin" / "python")
    folder = tmp_path / "vllm-0.10.1"
    assert find_engine("vllm", tmp_path) == EngineInstall(
        "vllm", str(folder / "bin/python"), None, "0.10.1", folder
    )


def test_a_registered_install_names_its_interpreter_elsewhere(tmp_path: Path) -> None:
    own = fake_program(tmp_path / "elsewhere" / "venv" / "bin" / "python", complete=False)
    folder = tmp_path / "engines" / "vllm-0.33.0"
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(json.dumps({"entry": str(own)}))
    assert find_engine("vllm", tmp_path / "engines") == EngineInstall(
        "vllm", str(own), None, "0.33.0", folder
    )
    own.unlink()  # the user's venv is gone: nothing to launch
    assert find_engine("vllm", tmp_path / "engines") is None


def test_find_engine_for_a_program_engine(tmp_path: Path) -> None:
    launcher = fake_program(tmp_path / "tgi-3.3.4" / "bin" / "text-generation-launcher")
    python = fake_program(launcher.parent / "python")
    assert find_engine("tgi", tmp_path) == EngineInstall(
        "tgi", str(python), str(launcher), "3.3.4", tmp_path / "tgi-3.3.4"
    )
    router = fake_program(tmp_path / "tei-1.8.0" / "bin" / "text-embeddings-router")
    assert find_engine("tei", tmp_path) == EngineInstall(
        "tei", None, str(router), "1.8.0", tmp_path / "tei-1.8.0"
    )


def test_an_override_wins_and_is_the_only_candidate(tmp_path: Path) -> None:
    fake_program(tmp_path / "engines" / "vllm-0.32.0" / "bin" / "python")
    own = fake_program(tmp_path / "elsewhere" / "venv" / "bin" / "python")
    assert find_engine("vllm", tmp_path / "engines", str(own)) == EngineInstall("vllm", str(own), None, None)
    assert find_engine("vllm", tmp_path / "engines", str(tmp_path / "missing" / "python")) is None
    router = fake_program(tmp_path / "opt" / "text-embeddings-router", complete=False)
    assert find_engine("tei", tmp_path, str(router)) == EngineInstall("tei", None, str(router), None)


def test_find_engine_returns_none_when_nothing_is_installed(tmp_path: Path) -> None:
    assert find_engine("vllm", tmp_path / "engines") is None
    fake_program(tmp_path / "llamacpp-0.3.35" / "bin" / "python")
    assert find_engine("vllm", tmp_path) is None
    assert find_engine("tgi", tmp_path) is None


def test_engine_path_puts_the_install_first() -> None:
    assert engine_path(venv("vllm"), "/usr/bin") == f"/eng/vllm-1.0/bin{os.pathsep}/usr/bin"
    assert engine_path(TEI, "") == "/eng/tei-1.8/bin"


def test_an_install_without_the_needed_entry_point_is_refused() -> None:
    with pytest.raises(ValueError, match="has no text-embeddings-router"):
        tei_launch("r1", "e", revision("tei"), "/m", venv("tei"), replica_dir=REPLICA_DIR, inherited_path="")
    with pytest.raises(ValueError, match="has no python interpreter"):
        vllm_launch("r1", "c", revision("vllm"), "/m", TEI, cache_root=REPLICA_DIR, inherited_path="")
