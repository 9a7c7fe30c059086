"""`modelport plan MODEL`: which hardware a model fits, how many sequences, what it costs.

A task model that is not an LLM (a classifier, Whisper, a diffusion pipeline) is shown with its
tasks, its towers or components, and the batch it is sized for instead of sequences.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelport import envs
from modelport.models.architecture import ModelFacts
from modelport.models.cache import ModelCache
from modelport.models.hardware import (
    HardwareOption,
    catalog,
    default_prices,
    instance_types,
    load_prices,
)
from modelport.models.inspect import ModelInspectError, inspect_model
from modelport.models.planner import OptionFit, Plan, PlanRequest, fmt_bytes, plan, plan_to_dict
from modelport.models.pull import resolve
from modelport.models.quantization import KV_CACHE_DTYPES, SCHEMES
from modelport.models.remote import PullError
from modelport.models.remote_headers import fetch_plan_folder
from modelport.models.sources import SourceError, parse_source
from modelport.models.task_plan import DEFAULT_TASK_BATCH, DIFFUSION, LLM, TaskShape

LOCAL, CACHE, REMOTE = "local path", "weight cache", "remote headers"
REMOTE_NOTE = "planned from the source's config and weight-file headers; no weights were downloaded"


@dataclass(frozen=True)
class _Target:
    path: Path  # what inspect_model reads
    read_from: str  # LOCAL, CACHE or REMOTE
    source: str | None = None  # the remote source as typed, shown instead of the path


def _resolve_model(model: str, scratch: Path) -> _Target:
    """MODEL as a local path; else a Hub id or s3:// source: its cached snapshot when pulled,
    otherwise its config and weight-file headers fetched into `scratch` (no weights downloaded)."""
    path = Path(model).expanduser()
    if path.exists():
        return _Target(path, LOCAL)
    try:
        source = parse_source(model)
    except SourceError as exc:
        raise typer.BadParameter(
            f"{model} is not a local model folder or .gguf file: {exc}", param_hint="MODEL"
        ) from None
    if source.kind == "local":
        raise typer.BadParameter(f"{model} is not a local model folder or .gguf file", param_hint="MODEL")
    typed = model.strip()
    try:
        cached = resolve(model, None, ModelCache(envs.model_cache_dir()), pull_missing=False)
        return _Target(cached, CACHE, typed)
    except PullError:
        pass  # not pulled (or damaged): a plan needs only the metadata
    return _Target(fetch_plan_folder(source, scratch), REMOTE, typed)


def _options(hardware: str | None, prices_file: Path | None) -> list[HardwareOption]:
    try:
        prices = load_prices(prices_file) if prices_file is not None else default_prices()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--prices") from exc
    options = catalog(prices)
    if not hardware:
        return options
    wanted = [h.strip() for h in hardware.split(",") if h.strip()]
    unknown = [h for h in wanted if h not in instance_types()]
    if unknown:
        raise typer.BadParameter(
            f"unknown hardware {', '.join(unknown)}; choose from {', '.join(instance_types())}",
            param_hint="--hardware",
        )
    return [o for o in options if o.instance_type in wanted]


def plan_command(
    model: Annotated[
        str, typer.Argument(help="A model folder (config.json, safetensors headers) or a .gguf file.")
    ],
    context: Annotated[
        int | None, typer.Option(min=1, help="Tokens per sequence; default: the model's maximum.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Sequences to serve at once at that context.")] = 1,
    quantization: Annotated[
        str | None,
        typer.Option(help=f"Weight format to plan for: {', '.join(SCHEMES)}; default: the checkpoint's."),
    ] = None,
    kv_cache_dtype: Annotated[str, typer.Option(help=f"{' or '.join(KV_CACHE_DTYPES)}.")] = "auto",
    hardware: Annotated[
        str | None, typer.Option(help="Comma-separated instance types, e.g. nvidia-l4,nvidia-h100,local.")
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(help='JSON file of USD per GPU-hour by instance type, e.g. {"nvidia-h100": 4.5}.'),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(min=1, help="Task models: inputs per batch; default 32 (diffusion: 1 image)."),
    ] = None,
    resolution: Annotated[
        str | None,
        typer.Option(help="Diffusion: image size, WIDTHxHEIGHT or one side; default: the pipeline's own."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole plan as JSON.")] = False,
) -> None:
    """Size MODEL for each GPU in the catalog and this machine's CPU, from its config and headers."""
    try:
        request = PlanRequest(
            context=context,
            concurrency=concurrency,
            quantization=quantization,
            kv_cache_dtype=kv_cache_dtype,
            batch=batch,
            resolution=_resolution(resolution),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    options = _options(hardware, prices)  # checked before any network call
    with tempfile.TemporaryDirectory(prefix="modelport-plan-") as scratch:
        try:
            target = _resolve_model(model, Path(scratch))
            info = inspect_model(target.path)
        except PullError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except ModelInspectError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from exc
    if target.source is not None:
        notes = (REMOTE_NOTE, *info.notes) if target.read_from == REMOTE else info.notes
        info = replace(info, source=target.source, notes=notes)
    result = plan(info, request, options)
    if as_json:
        data = plan_to_dict(result)
        data["model"]["read_from"] = target.read_from
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console()
    for line in _header(result, target.source):
        console.print(line)
    console.print(_table(result))
    for line in _footer(result, model):
        # commands are left for the terminal to wrap, so they copy and paste as one line
        console.print(line, soft_wrap=isinstance(line, _Command), highlight=False)


def _resolution(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--resolution takes WIDTHxHEIGHT or one side in pixels, not {text!r}")
    width = int(parts[0])
    return width, int(parts[-1])


class _Command(str):
    """A shell command line in the output."""


def _facts_line(facts: ModelFacts) -> str:
    attention = (
        f"{facts.attention_kind} {facts.num_attention_heads}/{facts.num_kv_heads} heads × {facts.head_dim}"
    )
    if facts.mla is not None:
        mla = facts.mla
        attention = f"MLA {facts.num_attention_heads} heads, latent {mla.kv_lora_rank}+{mla.qk_rope_head_dim}"
    parts = [facts.architecture, f"{facts.num_layers} layers", attention]
    if facts.moe is not None:
        parts.append(f"{facts.moe.num_experts} experts, {facts.moe.experts_per_token} per token")
    if facts.sliding_window:
        parts.append(f"window {facts.sliding_window:,} on {facts.sliding_layers} layers")
    return " · ".join(parts)


def _params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e7 else f"{n:,}"


def _header(p: Plan, typed: str | None) -> list[Text | str]:
    info = p.model
    name = typed or Path(info.source).name
    if p.task is not None:
        return _task_header(p, p.task, name)
    params = info.parameters
    active = f", {_params(params.active)} active" if params.active != params.total else ""
    kv_token = p.kv_bytes_per_token
    kv_text = f"{kv_token / 1024:,.0f} KiB" if kv_token >= 10 * 1024 else f"{kv_token:,} B"
    kv_dtype = "" if p.request.kv_cache_dtype == "auto" else f" ({p.request.kv_cache_dtype})"
    return [
        Text(f"{name} · {_facts_line(info.facts)}", style="bold"),
        f"{_params(params.total)} parameters{active} · from {info.parameter_source} · weights "
        f"{fmt_bytes(p.weights_bytes)} at {p.scheme}",
        f"KV cache {kv_text}/token{kv_dtype} → {fmt_bytes(p.kv_bytes_per_sequence)} per {p.context:,}-token "
        f"sequence · asked: {p.request.concurrency:,} at once",
    ]


def _task_header(p: Plan, task: TaskShape, name: str) -> list[Text | str]:
    info = p.model
    tasks = ", ".join(info.tasks) or "no task found"
    lines: list[Text | str] = [
        Text(f"{name} · {info.facts.architecture} · {tasks} (from {info.task_evidence})", style="bold"),
        f"{_params(info.parameters.total)} parameters · from {info.parameter_source} · weights "
        f"{fmt_bytes(p.weights_bytes)} at {p.scheme}",
    ]
    for c in info.components:
        lines.append(
            f"  {c.name} ({c.class_name}): {_params(c.parameters)} parameters, "
            f"{fmt_bytes(c.bytes)} {c.scheme}"
        )
    for t in info.towers:
        lines.append(f"  {t.name}: {t.layers} layers × {t.hidden_size}, {t.positions:,} positions")
    per_item = f"{fmt_bytes(task.item_bytes)} per {'image' if task.kind == DIFFUSION else 'input'}"
    lines.append(
        f"{task.kind}: no KV cache · working memory {per_item} at {p.scheme} (an estimate) · "
        f"batch of {task.batch:,} × {task.what}"
    )
    if p.scheme == "fp32":
        lines.append("GPUs load the weights in 16 bits: weights and working memory half these there")
    return lines


def _seqs(fit: OptionFit) -> Text:
    if not fit.fits:
        return Text("–", style="dim")
    return Text(f"{fit.max_sequences:,}", style="green" if fit.meets_concurrency else "yellow")


def _why(fit: OptionFit) -> str:
    parts = [fit.summary] if fit.summary else []
    if fit.smaller:
        parts.append(fit.smaller)
    return "; ".join(parts)


def _table(p: Plan) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold")
    table.add_column("Hardware", no_wrap=True)
    table.add_column("GPUs", justify="right", no_wrap=True)
    table.add_column("Fit", justify="center", no_wrap=True)
    column = f"Seqs@{_short_tokens(p.context)}" if p.task is None else "Max batch"
    table.add_column(column, justify="right", no_wrap=True)
    table.add_column("$/h", justify="right", no_wrap=True)
    table.add_column("$/1M", justify="right", no_wrap=True)
    table.add_column("Why", ratio=1, min_width=20)
    for fit in p.rows:
        option = fit.option
        name = option.accelerator.name if not option.is_cpu else "local CPU"
        gpus = "CPU" if option.is_cpu else str(option.count)
        mark = Text("✓", style="green") if fit.fits else Text("✗", style="red")
        cost = f"{fit.throughput.cost_per_million_tokens:.2f}" if fit.throughput else "–"
        table.add_row(name, gpus, mark, _seqs(fit), f"{option.price_per_hour:.2f}", cost, _why(fit))
    return table


def _short_tokens(n: int) -> str:
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}k"
    return f"{n:,}"


def _footer(p: Plan, model: str) -> list[Text | str]:
    lines: list[Text | str] = []
    best = p.cheapest
    wanted = f"{p.request.concurrency:,} × {p.context:,}-token sequences"
    if p.task is not None:
        wanted = f"a batch of {p.task.batch:,} × {p.task.what}"
    if best is None:
        most = max(p.evaluated, key=lambda f: f.max_sequences, default=None)
        tail = f"; the most is {most.max_sequences:,} on {most.option.label}" if most and most.fits else ""
        if most is not None and most.workload != LLM:
            tail = (
                f"; the largest batch is {most.max_sequences:,} on {most.option.label}"
                if most.max_sequences
                else ""
            )
        lines.append(Text(f"No option serves {wanted}{tail}.", style="bold red"))
    else:
        t = best.throughput
        speed = f", ~{t.tokens_per_s:,.0f} tok/s out, ~${t.cost_per_million_tokens:.2f}/1M" if t else ""
        price = f"${best.option.price_per_hour:.2f}/h"
        lines.append(Text(f"Cheapest for {wanted}: {best.option.label}, {price}{speed}", style="bold"))
        if best.vllm_flags:
            lines.append(_Command("  vllm serve " + shlex.join([model, *best.vllm_flags])))
        if best.builtin_flags:
            lines.append(_Command("  modelport serve " + shlex.join([model, *best.builtin_flags])))
        elif best.workload != LLM:
            batch_flags = ["--max-batch", str(best.batch)] if best.workload != DIFFUSION else []
            if best.batch == DEFAULT_TASK_BATCH:
                batch_flags = []
            lines.append(_Command("  modelport serve " + shlex.join([model, *batch_flags])))
        lines.extend(f"  note: {n}" for n in best.notes)
    for note in p.notes:
        lines.append(f"note: {note}")
    lines.append(
        Text(
            "GB = 10^9 bytes, per GPU. $/h: list-price-ish defaults (--prices FILE or "
            "MODELPORT_HARDWARE_PRICES). $/1M output tokens: a decode bandwidth model (docs/planner.md).",
            style="dim",
        )
    )
    return lines
