"""`modelport serve MODEL_DIR`: one model behind the OpenAI, TGI and TEI APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport import envs, logs


def serve(
    model: Annotated[
        str,
        typer.Argument(
            help="A model folder (config.json, *.safetensors, tokenizer files), or a source to load from "
            "the weight cache: org/name[@revision] (Hub or HF_ENDPOINT) or s3://bucket/prefix. A cached "
            "source needs no network; one not yet cached is pulled first."
        ),
    ],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit of a Hub source.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    served_model_name: Annotated[
        str | None, typer.Option(help="Model id clients use; default: folder name.")
    ] = None,
    dtype: Annotated[str, typer.Option(help="auto, bfloat16, float16 or float32.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    kv_cache_memory: Annotated[
        str | None,
        typer.Option(
            help="KV cache budget: a size (2GiB) or a fraction of device memory (0.1). Default: 1GiB on CPU, "
            "half the free GPU memory on CUDA."
        ),
    ] = None,
    block_size: Annotated[int, typer.Option(help="Tokens per KV cache block.")] = 16,
    max_num_seqs: Annotated[int, typer.Option(help="Most sequences in the running batch.")] = 64,
    max_num_batched_tokens: Annotated[int, typer.Option(help="Most tokens in one forward pass.")] = 2048,
    max_model_len: Annotated[int | None, typer.Option(help="Context length; default: the model's.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Allow pickle weights (*.bin, *.pt): can run code.")
    ] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="Run model code shipped in the folder.")] = False,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(help="Largest request body accepted; default 8 MiB, 32 MiB for image and audio tasks."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Hub task to serve (text-classification, image-classification, ...); default: the model's."
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Task pipelines: most requests run as one batch.")] = 32,
    any_model_name: Annotated[
        bool, typer.Option(help="Accept any model id in requests (the endpoint URL already names the model).")
    ] = False,
    api: Annotated[
        str, typer.Option(help="all (OpenAI, TGI, TEI) or openai (only /v1/*, like vLLM or llama.cpp).")
    ] = "all",
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error.", envvar=envs.LOG_LEVEL.name)
    ] = envs.LOG_LEVEL.default,
) -> None:
    """Serve one model on HTTP (OpenAI /v1/*, TGI /generate, TEI /embed, /health, /metrics)."""
    if api not in ("all", "openai"):
        typer.echo(f"error: --api must be all or openai, not {api!r}", err=True)
        raise typer.Exit(code=2)
    envs.apply_process_defaults()  # before torch is imported
    from modelport.engine import startup

    startup.mark("interpreter")
    logs.configure(log_level)
    # before torch is imported: a source that cannot be had fails in a second, not after the imports
    model_path, source_name = _local_model(model, revision, allow_pickle, trust_remote_code)
    startup.mark("fetch")
    from modelport.engine.loader import ModelLoadError
    from modelport.server.app import create_app, run
    from modelport.server.builder import ServeOptions, build_state

    opts = ServeOptions(
        model=model_path,
        served_model_name=served_model_name or source_name,
        dtype=dtype,
        device=device,
        kv_cache_memory=kv_cache_memory,
        block_size=block_size,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=max_model_len,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        max_body_bytes=max_body_bytes,
        any_model_name=any_model_name,
        task=task,
        max_batch=max_batch,
    )
    try:
        state = build_state(opts)
    except (ModelLoadError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    app = create_app(state, api)
    startup.mark("app")
    typer.echo(
        f"modelport: serving {state.model_name} on http://{host}:{port} (OpenAI: http://{host}:{port}/v1)",
        err=True,
    )
    try:
        code = run(app, host=host, port=port, log_level=log_level.lower())
    finally:
        if state.llm is not None:
            state.llm.shutdown()
        if state.embedder is not None:
            state.embedder.shutdown()
        if state.tasks is not None:
            state.tasks.shutdown()
    if code:
        raise typer.Exit(code=code)  # 1: the engine died; the control plane restarts the replica


def _local_model(
    model: str, revision: str | None, allow_pickle: bool, trust_remote_code: bool
) -> tuple[Path, str | None]:
    """The folder to load and, for a remote source, the name clients see (org/name)."""
    from modelport.models.cache import ModelCache
    from modelport.models.pull import resolve
    from modelport.models.remote import PullError
    from modelport.models.sources import SourceError, parse_source

    try:
        source = parse_source(model, revision)
        path = resolve(
            model,
            revision,
            ModelCache(envs.model_cache_dir()),
            pull_missing=True,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
        )
    except (SourceError, PullError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    return path, (source.location if source.kind == "hub" else None)
