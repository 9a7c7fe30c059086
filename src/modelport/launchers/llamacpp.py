"""How a replica of llama.cpp is launched: llama-cpp-python's OpenAI server, from its own venv.

`python -m llama_cpp.server` takes its settings as `--<field> value` with the field names of
`llama_cpp/server/settings.py` (underscores: `--n_ctx`, `--model_alias`, `--n_gpu_layers`;
booleans take a value). It loads one GGUF file, before it starts listening.

Health: llama-cpp-python has no /health route. /v1/models answers only once the model is loaded,
but it waits on the lock that serialises generation, so a probe stalls behind a long request,
and with the server's default `interrupt_requests` it cuts a streaming response short. The
replica is probed on /openapi.json instead, which FastAPI serves without that lock and, like
every route, only after the model has loaded; and `--interrupt_requests False` stops a second
client from ending the first one's stream.

Planner flags mapped (`llamacpp_flags`):
- `--max-model-len` → `--n_ctx` (one sequence at a time, so the context is the whole cache);
  without one, `--n_ctx 0`: llama.cpp's "the model's own", the context length in the GGUF's
  metadata (`<arch>.context_length`, read by llama.cpp from the file it loads). Never left unset:
  llama-cpp-python's default is 2048 whatever the model, so a 3,400-token prompt to a
  4,096-context GGUF was refused. The engine reads the file, not this launcher, because the file is
  known only once engine_exec has pulled it, and the launcher runs on the control loop;
- a GPU plan (it sets `--gpu-memory-utilization`) → `--n_gpu_layers -1`, every layer offloaded.
No equivalent: `--tensor-parallel-size` (llama.cpp splits layers over every visible GPU by
itself), `--kv-cache-dtype` (its `type_k`/`type_v` take GGML types, no fp8), `--quantization`
and `--dtype` (a GGUF file carries its own types), `--max-num-seqs` (one request at a time).

Its `__main__` lets the HOST and PORT environment variables override `--host` and `--port`:
HOST is set here; a PORT in the control plane's own environment would move the server off the
runtime's port (the runtime fills in "{port}" in argv only), so the wiring must drop it.

Served: the OpenAI API. No Prometheus metrics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from modelport.launchers.engine_exec import MODEL_PATH
from modelport.launchers.engine_install import EngineInstall, engine_env
from modelport.runtime.base import LaunchSpec
from modelport.spec.engine_flags import LLAMACPP_OWNED as OWNED
from modelport.spec.engine_flags import check_owned, flag_values, merge
from modelport.store.records import ModelRevision

HEALTH_PATH = "/openapi.json"
# the replica's token: its settings are pydantic-settings, so API_KEY sets `api_key`, and then
# every /v1 route wants it as a bearer token (/openapi.json, the health probe, stays open)
TOKEN_VAR = "API_KEY"
MODULE = "llama_cpp.server"
MODEL_CONTEXT = "0"  # --n_ctx 0: the GGUF's own context length (llama.cpp's n_ctx_train)


def llamacpp_launch(
    replica_id: str,
    served_name: str,
    revision: ModelRevision,
    model_path: str,
    engine: EngineInstall,
    plan_flags: Sequence[str] = (),
    *,
    cpu_threads: int | None = None,
    inherited_path: str | None = None,
) -> LaunchSpec:
    """`model_path`: a .gguf file. `cpu_threads`: threads for generation (default: every core;
    llama-cpp-python's own default is half of them)."""
    # "{model_path}": the file is known only once engine_exec has resolved the source (it checks then)
    if model_path != MODEL_PATH and not model_path.lower().endswith(".gguf"):
        raise ValueError(
            f"llama.cpp serves a single GGUF file, and {model_path} is not one: point the endpoint at a "
            ".gguf file (a Hub repository's or a local one), or convert the checkpoint first with "
            "`modelport models convert DIR --to gguf` (llama.cpp's convert_hf_to_gguf.py)"
        )
    check_owned("llama.cpp", revision.args, OWNED, {})
    threads = cpu_threads or os.cpu_count() or 1
    ours = [*llamacpp_flags(plan_flags), "--n_threads", str(threads), "--interrupt_requests", "False"]
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
        "--model_alias",
        served_name,
        *merge(ours, revision.args),
    ]
    # HOST after the user's env: one there would otherwise win over --host
    env = {**engine_env(engine, revision, inherited_path), "HOST": "127.0.0.1"}
    return LaunchSpec(replica_id, command, env, HEALTH_PATH, token_vars=(TOKEN_VAR,))


def llamacpp_apis(revision: ModelRevision) -> frozenset[str]:
    return frozenset({"openai"})


def llamacpp_flags(plan_flags: Sequence[str]) -> list[str]:
    """The planner's vLLM flags in llama-cpp-python's names (the module docstring lists the rest)."""
    plan = flag_values(plan_flags)
    flags = ["--n_ctx", plan.get("--max-model-len", MODEL_CONTEXT)]
    if "--gpu-memory-utilization" in plan:
        flags += ["--n_gpu_layers", "-1"]
    return flags
