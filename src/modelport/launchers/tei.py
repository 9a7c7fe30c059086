"""How a replica of TEI (text-embeddings-inference) is launched: `text-embeddings-router`.

`--served-model-name` is the name its OpenAI route reports. Per replica, so that two replicas can
share a machine: `--prometheus-port 0` (its extra metrics listener defaults to port 9000, as
TGI's does; /metrics on the main port is unaffected) and the unix socket of its Python backend
in the replica's folder (default /tmp/text-embeddings-inference-server).

`model.image.tei` settings: `maxBatchTokens` → `--max-batch-tokens` (tokens in one batch, TEI's
main throughput knob; default 16384), `maxClientBatchSize` → `--max-client-batch-size` (inputs
in one request; default 32).

Planner flags mapped (`tei_flags`): `--dtype float16|float32` → `--dtype` (bfloat16 exists only
in TEI's Python backend), `--max-num-seqs` → `--max-batch-requests`. No equivalent: context
length (TEI takes the model's own; `--auto-truncate` is a behaviour, not a size), tensor
parallel (one device), memory fraction, quantization, KV cache dtype (no KV cache).

Served: TEI's API (/embed, /rerank, /predict, /tokenize, /info) and the OpenAI embeddings route;
health /health; Prometheus /metrics with `te_` names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.launchers.engine_install import EngineInstall, engine_env
from modelport.runtime.base import LaunchSpec
from modelport.spec.engine_flags import check_owned, flag_values, merge, socket_path
from modelport.store.records import ModelRevision

HEALTH_PATH = "/health"
OWNED = frozenset({"--model-id", "--hostname", "--port", "--served-model-name"})
IMAGE_SETTINGS = {"maxBatchTokens": "--max-batch-tokens", "maxClientBatchSize": "--max-client-batch-size"}


def tei_launch(
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
    check_owned("TEI", revision.args, OWNED, {})
    ours = [
        *tei_flags(plan_flags),
        *image_flags(revision.image_config),
        "--uds-path",
        socket_path(replica_dir, "tei-backend"),
        "--prometheus-port",
        "0",
    ]
    command = [
        engine.require_executable(),
        "--model-id",
        model_path,
        "--hostname",
        "127.0.0.1",
        "--port",
        "{port}",
        "--served-model-name",
        served_name,
        *merge(ours, revision.args),
    ]
    return LaunchSpec(replica_id, command, engine_env(engine, revision, inherited_path), HEALTH_PATH)


def tei_apis(revision: ModelRevision) -> frozenset[str]:
    return frozenset({"tei", "openai"})


def tei_flags(plan_flags: Sequence[str]) -> list[str]:
    """The planner's vLLM flags in TEI's names (the module docstring lists the rest)."""
    plan = flag_values(plan_flags)
    flags = []
    if plan.get("--dtype") in ("float16", "float32"):
        flags += ["--dtype", plan["--dtype"]]
    if "--max-num-seqs" in plan:
        flags += ["--max-batch-requests", plan["--max-num-seqs"]]
    return flags


def image_flags(config: Mapping[str, Any]) -> list[str]:
    """TEI flags for the `model.image.tei` settings."""
    flags = []
    for key, flag in IMAGE_SETTINGS.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"image.tei.{key} must be a positive integer, not {value!r}")
        flags += [flag, str(value)]
    return flags
