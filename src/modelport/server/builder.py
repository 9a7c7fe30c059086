"""Turn serve options into a ready `ServerState`: load the model, size the KV pool, warm up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from modelport import envs
from modelport.engine.loader import (
    LoadedModel,
    check_weights,
    is_embedding_model,
    load_causal_lm,
    pick_device,
)
from modelport.server.state import ModelKind, ServerState

log = logging.getLogger(__name__)


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
    max_body_bytes: int = 8 * 1024 * 1024
    any_model_name: bool = False


def build_state(opts: ServeOptions) -> ServerState:
    path = Path(opts.model).expanduser().resolve()
    check_weights(path, opts.allow_pickle)
    name = opts.served_model_name or path.name
    threads = envs.torch_threads()
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    if is_embedding_model(path):
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
            tokenizer=embedder.tokenizer,
            max_model_len=embedder.max_input_tokens,
            embedder=embedder,
            ready=True,
            max_body_bytes=opts.max_body_bytes,
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
        max_body_bytes=opts.max_body_bytes,
        any_model_name=opts.any_model_name,
    )
