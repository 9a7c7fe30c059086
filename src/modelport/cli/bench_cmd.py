"""`modelport bench serve`: load-test any OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.loadgen import BenchError, OnRequestDone, run_load
from modelport.bench.report import error_table, result_table, result_to_dict
from modelport.bench.result import BenchResult, RequestRecord

bench_app = typer.Typer(help="Benchmark OpenAI-compatible servers.", no_args_is_help=True)


def _run_with_progress(config: LoadConfig, show: bool) -> BenchResult:
    if not show:
        return asyncio.run(run_load(config))
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed: {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        warm = progress.add_task("warmup", total=config.warmup, failed=0, visible=config.warmup > 0)
        timed = progress.add_task("requests", total=config.num_requests, failed=0)
        failed = {warm: 0, timed: 0}

        def advance(task: TaskID) -> OnRequestDone:
            def on_done(record: RequestRecord) -> None:
                failed[task] += 0 if record.ok else 1
                progress.update(task, advance=1, failed=failed[task])

            return on_done

        return asyncio.run(run_load(config, on_done=advance(timed), on_warmup_done=advance(warm)))


@bench_app.command("serve")
def serve(
    url: Annotated[
        str, typer.Option(help="Base URL of an OpenAI-compatible server, with or without /v1.")
    ] = ("http://127.0.0.1:8080"),
    model: Annotated[
        str | None, typer.Option(help="Model id to send; default: the first of GET /v1/models.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 1,
    num_requests: Annotated[int, typer.Option(min=1, help="Timed requests to send.")] = 16,
    prompt_tokens: Annotated[
        int, typer.Option(min=1, help="Approximate prompt length (random words).")
    ] = 128,
    output_tokens: Annotated[
        int, typer.Option(min=1, help="max_tokens; sent with ignore_eos so every output has this length.")
    ] = 128,
    stream: Annotated[bool, typer.Option(help="Stream responses (needed for TTFT and TPOT).")] = True,
    endpoint: Annotated[Endpoint, typer.Option(help="completions (/v1/completions) or chat.")] = (
        Endpoint.completions
    ),
    api_key: Annotated[str | None, typer.Option(help="Bearer token for the server.")] = None,
    ignore_eos: Annotated[
        bool, typer.Option(help="Send ignore_eos: true (vLLM / modelport extension).")
    ] = True,
    extra_body: Annotated[
        str | None, typer.Option(help="JSON object merged into every request body, e.g. '{\"top_k\": 1}'.")
    ] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed requests sent first.")] = 0,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 600.0,
    seed: Annotated[int, typer.Option(help="Seed of the random prompts.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result (with every request) as JSON.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG: TTFT / TPOT / e2e histograms and a request timeline.")
    ] = None,
) -> None:
    """Send NUM_REQUESTS requests at CONCURRENCY and report throughput and latency percentiles."""
    try:
        extra = json.loads(extra_body) if extra_body else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--extra-body") from exc
    if not isinstance(extra, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--extra-body")
    try:
        config = LoadConfig(
            url=url,
            model=model,
            concurrency=concurrency,
            num_requests=num_requests,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            stream=stream,
            endpoint=endpoint,
            api_key=api_key,
            warmup=warmup,
            ignore_eos=ignore_eos,
            seed=seed,
            timeout_s=timeout,
            extra_body=extra,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        result = _run_with_progress(config, show=not as_json and sys.stderr.isatty())
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc

    if plot is not None:
        from modelport.bench.plot import plot_result

        plot_result(result, plot)
    if as_json:
        typer.echo(json.dumps(result_to_dict(result), indent=2))
    else:
        console = Console()
        console.print(result_table(result))
        errors = error_table(result)
        if errors is not None:
            console.print(errors)
        if plot is not None:
            console.print(f"plot: {plot}")
    if not result.ok:
        raise typer.Exit(code=1)


@bench_app.command("cold-start")
def cold_start(
    model: Annotated[Path, typer.Argument(help="Model folder to start cold (e.g. .demo/tiny).")],
    runs: Annotated[int, typer.Option(min=1, help="Runs of each measurement; medians are reported.")] = 3,
    log_dir: Annotated[Path | None, typer.Option(help="Where replica and control-plane logs go.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON report to this file.")] = None,
) -> None:
    """Time a cold start step by step, direct and through the gateway, against the physical floor."""
    from modelport.bench.cold_start import run_cold_start
    from modelport.bench.report import cold_start_table

    if not (model / "config.json").is_file():
        raise typer.BadParameter(f"{model} has no config.json: pass a model folder", param_hint="MODEL")
    err = Console(stderr=True)
    logs = log_dir or Path(tempfile.mkdtemp(prefix="mp-cold-start-logs-"))
    try:
        with err.status("starting") as status:
            report = run_cold_start(model, runs, logs, lambda text: status.update(text))
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc} (logs in {logs})", err=True)
        raise typer.Exit(code=1) from exc
    if out is not None:
        out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    Console().print(cold_start_table(report))
    err.print(f"logs: {logs}")
