"""How a replica of TGI (text-generation-inference) is launched: `text-generation-launcher`.

The launcher starts `text-generation-server` shards and `text-generation-router` found on PATH,
so the install's bin folder goes first on it. Per replica, so that two replicas can share a
machine: the shards' unix sockets in the replica's folder (the default, /tmp/text-generation-
server-<rank>, is deleted by each new launcher), and `--prometheus-port 0` (the router's extra
metrics listener defaults to port 9000 and a second router fails to bind it; /metrics on the main
port is unaffected). `--usage-stats off`: TGI reports usage to Hugging Face by default.
Not handled: `--master-port` (torch.distributed, default 29500) for two sharded replicas at once.

Planner flags mapped (`tgi_flags`):
- `--max-model-len N` → `--max-total-tokens N --max-input-tokens N-1` (TGI requires input <
  total; if the user sets either, or the legacy `--max-input-length`, both planned ones go);
- `--tensor-parallel-size` → `--num-shard` (always passed: TGI otherwise shards over every
  visible GPU);
- `--gpu-memory-utilization` → `--cuda-memory-fraction`;
- `--quantization` → `--quantize` (same names for fp8, awq, gptq, marlin, bitsandbytes,
  compressed-tensors);
- `--kv-cache-dtype fp8` → `fp8_e4m3fn` (fp8_e5m2 as is);
- `--dtype float16|bfloat16` → `--dtype`, unless quantizing (TGI refuses both together);
- `--max-num-seqs` → `--max-concurrent-requests`: TGI admits that many requests at once and
  answers 429 beyond (its default is 128), where vLLM would queue them.
No equivalent: `--dtype float32`.

Served: TGI's API (/generate, /generate_stream, /info, /tokenize) and the OpenAI chat and
completions routes; health /health; Prometheus /metrics with `tgi_` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelport.launchers.engine_install import EngineInstall, engine_env
from modelport.runtime.base import LaunchSpec
from modelport.spec.engine_flags import check_owned, flag_values, kv_dtype_flags, merge, socket_path
from modelport.store.records import ModelRevision

HEALTH_PATH = "/health"
OWNED = frozenset({"--model-id", "--hostname", "--port"})
LINKED = (
    frozenset({"--max-input-tokens", "--max-input-length", "--max-total-tokens"}),
    frozenset({"--quantize", "--dtype"}),
)
QUANTIZE = frozenset({"fp8", "awq", "gptq", "marlin", "bitsandbytes", "compressed-tensors"})
KV_CACHE_DTYPES = {"fp8": "fp8_e4m3fn", "fp8_e4m3": "fp8_e4m3fn", "fp8_e5m2": "fp8_e5m2"}


def tgi_launch(
    replica_id: str,
    served_name: str,
    revision: ModelRevision,
    model_path: str,
    engine: EngineInstall,
    plan_flags: Sequence[str] = (),
    *,
    replica_dir: Path,
    inherited_path: str | None = None,
) -> LaunchSpec:
    """`served_name` is unused: TGI names the model by its path and accepts any name in requests."""
    check_owned("TGI", revision.args, OWNED, {})
    ours = [
        *tgi_flags(plan_flags),
        "--shard-uds-path",
        socket_path(replica_dir, "tgi-shard", suffix_room=3),  # TGI appends "-<rank>"
        "--prometheus-port",
        "0",
        "--usage-stats",
        "off",
    ]
    command = [
        engine.require_executable(),
        "--model-id",
        model_path,
        "--hostname",
        "127.0.0.1",
        "--port",
        "{port}",
        *merge(ours, revision.args, linked=LINKED),
    ]
    return LaunchSpec(replica_id, command, engine_env(engine, revision, inherited_path), HEALTH_PATH)


def tgi_apis(revision: ModelRevision) -> frozenset[str]:
    return frozenset({"tgi", "openai"})


def tgi_flags(plan_flags: Sequence[str]) -> list[str]:
    """The planner's vLLM flags in TGI's names (the module docstring lists the mapping)."""
    plan = flag_values(plan_flags)
    flags = []
    if "--max-model-len" in plan:
        context = int(plan["--max-model-len"])
        flags += ["--max-input-tokens", str(context - 1), "--max-total-tokens", str(context)]
    flags += ["--num-shard", plan.get("--tensor-parallel-size", "1")]
    if "--gpu-memory-utilization" in plan:
        flags += ["--cuda-memory-fraction", plan["--gpu-memory-utilization"]]
    quantize = plan.get("--quantization")
    if quantize is not None:
        if quantize not in QUANTIZE:
            raise ValueError(f"TGI has no {quantize} quantization; it knows {', '.join(sorted(QUANTIZE))}")
        flags += ["--quantize", quantize]
    flags += kv_dtype_flags(plan, KV_CACHE_DTYPES, "TGI")
    dtype = plan.get("--dtype")
    if dtype in ("float16", "bfloat16") and quantize is None:
        flags += ["--dtype", dtype]
    if "--max-num-seqs" in plan:
        flags += ["--max-concurrent-requests", plan["--max-num-seqs"]]
    return flags
