"""Which launcher starts a replica, by the endpoint's `model.image` kind.

The rest of modelport (gateway, autoscaler, metering) sees only the `LaunchSpec` (argv, env,
health route) and the APIs the engine answers; the gateway translates requests for the others.

vLLM and llama.cpp replicas start through `engine_exec`, which fetches the weights into the
machine's cache (as a builtin replica does in its `fetch` phase) and then becomes the engine.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from modelport.launchers.builtin import builtin_launch, served_apis
from modelport.launchers.custom import custom_apis, custom_launch
from modelport.launchers.engine_exec import MODEL_PATH
from modelport.launchers.engine_install import EngineInstall, find_engine
from modelport.launchers.llamacpp import llamacpp_apis, llamacpp_launch
from modelport.launchers.vllm import vllm_apis, vllm_launch
from modelport.runtime.base import LaunchSpec
from modelport.spec.endpoint import ImageKind
from modelport.store.records import ModelRevision

INSTALLED_ENGINES = frozenset({ImageKind.VLLM, ImageKind.LLAMACPP})
# engines that answer only the served name modelport gives them (the gateway renames requests)
NAMED_ENGINES = frozenset({ImageKind.VLLM.value, ImageKind.LLAMACPP.value})
ENGINE_NAMES = {ImageKind.VLLM: "vLLM", ImageKind.LLAMACPP: "llama.cpp"}


@dataclass(frozen=True)
class ReplicaSizing:
    """The planner's sizing for one replica, in the forms the launchers take."""

    builtin_args: list[str] = field(default_factory=list)  # modelport serve flags the user left unset
    engine_flags: list[str] = field(default_factory=list)  # vLLM-named; each launcher maps its own
    cpu_kv_cache_bytes: int | None = None  # set when the replica runs on the CPU


@dataclass(frozen=True)
class Places:
    """Where engines are installed and where they keep their caches on this machine."""

    engines_dir: Path
    cache_dir: Path  # shared by replicas: vLLM's torch.compile cache makes every later start faster


def launch_spec(
    replica_id: str,
    served_name: str,
    revision: ModelRevision,
    plan: ReplicaSizing | None = None,
    places: Places | None = None,
) -> LaunchSpec:
    plan = plan or ReplicaSizing()
    kind = ImageKind(revision.image_kind)
    if kind == ImageKind.CUSTOM:
        return custom_launch(replica_id, served_name, revision)
    if kind == ImageKind.HUGGINGFACE:
        return builtin_launch(replica_id, served_name, revision, plan.builtin_args)
    if kind in INSTALLED_ENGINES:
        if places is None:
            raise ValueError(f"{ENGINE_NAMES[kind]} replicas need the engines folder")
        engine = require_engine(kind, revision, places.engines_dir)
        return _wrapped(replica_id, served_name, revision, plan, places, engine)
    raise ValueError(f"no launcher for image kind {kind.value!r} on this installation")


def require_engine(kind: ImageKind, revision: ModelRevision, engines_dir: Path) -> EngineInstall:
    override = revision.image_config.get("enginePython")
    engine = find_engine(kind.value, engines_dir, override if isinstance(override, str) else None)
    if engine is None:
        raise ValueError(missing_engine(kind, engines_dir, override))
    return engine


def missing_engine(kind: ImageKind, engines_dir: Path, override: object) -> str:
    name = ENGINE_NAMES.get(kind, kind.value)
    if isinstance(override, str):
        return f"image.{kind.value}.enginePython {override} is not an executable file"
    return (
        f"no {name} engine is installed in {engines_dir}: run `modelport engines install {kind.value}` "
        f"on this machine, or set model.image.{kind.value}.enginePython to the python of your own install"
    )


def _wrapped(
    replica_id: str,
    served_name: str,
    revision: ModelRevision,
    plan: ReplicaSizing,
    places: Places,
    engine: EngineInstall,
) -> LaunchSpec:
    kind = ImageKind(revision.image_kind)
    fetch = [sys.executable, "-m", "modelport.launchers.engine_exec", "--source", revision.repository]
    if revision.revision:
        fetch += ["--revision", revision.revision]
    if "--trust-remote-code" in revision.args:
        fetch.append("--trust-remote-code")
    if kind == ImageKind.VLLM:
        spec = vllm_launch(
            replica_id,
            served_name,
            revision,
            MODEL_PATH,
            engine,
            plan.engine_flags,
            cache_root=places.cache_dir / "vllm",
            cpu_kv_cache_bytes=plan.cpu_kv_cache_bytes,
        )
    else:
        spec = llamacpp_launch(replica_id, served_name, revision, MODEL_PATH, engine, plan.engine_flags)
        # llama-cpp-python's __main__ lets PORT override --port (see llamacpp.py)
        fetch += ["--need-gguf", "--unset", "PORT"]
    return dataclasses.replace(spec, command=[*fetch, "--", *spec.command])


def engine_apis(revision: ModelRevision) -> frozenset[str]:
    kind = ImageKind(revision.image_kind)
    if kind == ImageKind.CUSTOM:
        return custom_apis(revision)
    if kind == ImageKind.VLLM:
        return vllm_apis(revision)
    if kind == ImageKind.LLAMACPP:
        return llamacpp_apis(revision)
    return served_apis(revision)
