"""Turn serve options into a ready `ServerState`: load the model, size the KV pool, warm up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from modelport import envs
from modelport.engine.loader import (
    LoadedModel,
    ModelLoadError,
    check_weights,
    is_embedding_model,
    load_causal_lm,
    pick_device,
)
from modelport.models.tasks import EMBEDDING, GENERATION, TaskMismatch, detect_tasks, resolve_task
from modelport.server.state import ModelKind, ServerState

log = logging.getLogger(__name__)

BODY_BYTES = 8 * 1024 * 1024
TASK_BODY_BYTES = 32 * 1024 * 1024  # a 25 MiB audio upload (OpenAI's limit) as base64 JSON fits


@dataclass(frozen=True)
class ServeOptions:
    model: Path
    served_model_name: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    kv_cache_memory: str | None = None
    block_size: int = 16
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    max_body_bytes: int | None = None  # None: 8 MiB, or TASK_BODY_BYTES for a task model
    any_model_name: bool = False
    task: str | None = None  # None: the folder's own (models/tasks.py)
    max_batch: int = 32  # task pipelines: most requests in one batch


def build_state(opts: ServeOptions) -> ServerState:
    path = Path(opts.model).expanduser().resolve()
    task = served_task(path, opts.task)
    if task != "custom" and not (path / "model_index.json").is_file():
        check_weights(path, opts.allow_pickle)  # diffusers keeps its weights in component folders
    name = opts.served_model_name or path.name
    threads = envs.torch_threads()
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    if task not in (GENERATION, *EMBEDDING):
        return _task_state(path, task, name, opts)
    if task in EMBEDDING or is_embedding_model(path):
        from modelport.engine.embedder import Embedder

        embedder = Embedder.load(
            path, dtype=opts.dtype, device=opts.device, allow_pickle=opts.allow_pickle, model_name=name
        )
        embedder.start()
        embedder.warmup()
        return ServerState(
            model_name=name,
            model_path=str(path),
            kind=ModelKind.EMBED,
            task=task,
            tokenizer=embedder.tokenizer,
            max_model_len=embedder.max_input_tokens,
            embedder=embedder,
            ready=True,
            max_body_bytes=opts.max_body_bytes or BODY_BYTES,
            any_model_name=opts.any_model_name,
        )
    from modelport.engine.engine import EngineConfig, LLMEngine
    from modelport.engine.memory import default_budget, parse_budget

    device = pick_device(opts.device)
    budget = parse_budget(opts.kv_cache_memory, device) if opts.kv_cache_memory else default_budget(device)

    def load() -> LoadedModel:
        return load_causal_lm(
            path,
            dtype=opts.dtype,
            device=opts.device,
            allow_pickle=opts.allow_pickle,
            trust_remote_code=opts.trust_remote_code,
            max_model_len=opts.max_model_len,
        )

    engine = LLMEngine(
        load,
        EngineConfig(
            block_size=opts.block_size,
            kv_cache_bytes=budget,
            max_num_seqs=opts.max_num_seqs,
            max_num_batched_tokens=opts.max_num_batched_tokens,
        ),
        name,
    )
    engine.start()
    loaded, stats = engine.loaded, engine.stats()
    log.info(
        "loaded %s on %s as %s: weights %.1f MiB, KV pool %d blocks x %d tokens (%.1f MiB), context %d",
        name,
        loaded.device,
        loaded.dtype,
        loaded.weight_bytes / 2**20,
        stats.kv_blocks_total,
        opts.block_size,
        stats.kv_cache_bytes / 2**20,
        loaded.max_model_len,
    )
    return ServerState(
        model_name=name,
        model_path=str(path),
        kind=ModelKind.GENERATE,
        tokenizer=loaded.tokenizer,
        max_model_len=loaded.max_model_len,
        llm=engine,
        ready=True,
        max_body_bytes=opts.max_body_bytes or BODY_BYTES,
        any_model_name=opts.any_model_name,
    )


def served_task(path: Path, asked: str | None) -> str:
    """The task this replica serves: the one asked for, checked against the folder, or its own."""
    found = detect_tasks(path)
    if not found.tasks and not asked:
        return GENERATION  # nothing in the folder says otherwise: served as before tasks were checked
    try:
        return resolve_task(asked, found, path.name)
    except TaskMismatch as exc:
        raise ModelLoadError(str(exc)) from None


def _task_state(path: Path, task: str, name: str, opts: ServeOptions) -> ServerState:
    from modelport.pipelines.base import LoadOptions
    from modelport.pipelines.service import TaskService

    options = LoadOptions(
        device=opts.device,
        dtype=opts.dtype,
        allow_pickle=opts.allow_pickle,
        trust_remote_code=opts.trust_remote_code,
        max_batch=opts.max_batch,
    )
    try:
        service = TaskService.load(path, task, options, name)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(f"cannot load {path.name} for {task}: {type(exc).__name__}: {exc}") from exc
    service.start()
    log.info("loaded %s for %s", name, task)
    return ServerState(
        model_name=name,
        model_path=str(path),
        kind=ModelKind.TASK,
        tokenizer=getattr(service.runner, "tokenizer", None),
        max_model_len=int(getattr(service.runner, "max_input_tokens", 0) or 0),
        tasks=service,
        task=task,
        ready=True,
        max_body_bytes=opts.max_body_bytes or TASK_BODY_BYTES,
        any_model_name=opts.any_model_name,
    )
