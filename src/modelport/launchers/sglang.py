"""How a replica of SGLang is launched: `python -m sglang.launch_server` from its own venv.

`--enable-metrics` turns on its Prometheus /metrics (`sglang:` names), off by default.
Health: /health answers 503 while the server starts and, when idle, runs a one-token generation,
so a 200 means the whole pipeline works.

Planner flags mapped (`sglang_flags`):
- `--max-model-len` → `--context-length`;
- `--tensor-parallel-size` → `--tp-size`;
- `--gpu-memory-utilization` → `--mem-fraction-static`. Not the same measure: SGLang's fraction
  covers weights and the KV pool only, with activations outside it, so the same number leaves
  less headroom than in vLLM. It is passed as is, and the user's args can lower it;
- `--quantization` → `--quantization` (same names for the formats the planner uses);
- `--kv-cache-dtype fp8` → `fp8_e4m3` (fp8_e5m2 as is);
- `--dtype` → `--dtype` (same names);
- `--max-num-seqs` → `--max-running-requests`.
All of vLLM's planned flags have an equivalent here.

Served: the OpenAI API.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelport.launchers.engine_install import EngineInstall, engine_env
from modelport.runtime.base import LaunchSpec
from modelport.spec.engine_flags import check_owned, flag_values, kv_dtype_flags, merge
from modelport.store.records import ModelRevision

HEALTH_PATH = "/health"
MODULE = "sglang.launch_server"
OWNED = frozenset({"--model-path", "--host", "--port", "--served-model-name"})
ALIASES = {"--model": "--model-path", "--tp": "--tp-size", "--tensor-parallel-size": "--tp-size"}
QUANTIZATION = frozenset(
    {
        "fp8",
        "awq",
        "gptq",
        "marlin",
        "gptq_marlin",
        "awq_marlin",
        "bitsandbytes",
        "gguf",
        "compressed-tensors",
    }
)
KV_CACHE_DTYPES = {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
# vLLM flag → SGLang flag, for those whose values are the same
_SAME_VALUES = {
    "--max-model-len": "--context-length",
    "--tensor-parallel-size": "--tp-size",
    "--gpu-memory-utilization": "--mem-fraction-static",
    "--dtype": "--dtype",
    "--max-num-seqs": "--max-running-requests",
}


def sglang_launch(
    replica_id: str,
    served_name: str,
    revision: ModelRevision,
    model_path: str,
    engine: EngineInstall,
    plan_flags: Sequence[str] = (),
    *,
    inherited_path: str | None = None,
) -> LaunchSpec:
    check_owned("SGLang", revision.args, OWNED, ALIASES)
    command = [
        engine.require_python(),
        "-m",
        MODULE,
        "--model-path",
        model_path,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--served-model-name",
        served_name,
        *merge([*sglang_flags(plan_flags), "--enable-metrics"], revision.args, ALIASES),
    ]
    return LaunchSpec(replica_id, command, engine_env(engine, revision, inherited_path), HEALTH_PATH)


def sglang_apis(revision: ModelRevision) -> frozenset[str]:
    return frozenset({"openai"})


def sglang_flags(plan_flags: Sequence[str]) -> list[str]:
    """The planner's vLLM flags in SGLang's names (the module docstring lists the mapping)."""
    plan = flag_values(plan_flags)
    flags = []
    for vllm_flag, sglang_flag in _SAME_VALUES.items():
        if vllm_flag in plan:
            flags += [sglang_flag, plan[vllm_flag]]
    quantization = plan.get("--quantization")
    if quantization is not None:
        if quantization not in QUANTIZATION:
            raise ValueError(f"SGLang has no {quantization} quantization")
        flags += ["--quantization", quantization]
    flags += kv_dtype_flags(plan, KV_CACHE_DTYPES, "SGLang")
    return flags
