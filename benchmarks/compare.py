"""Compare modelport with sequential `generate`, `transformers serve` and vLLM on one model folder.

    python benchmarks/compare.py [MODEL_DIR] [--concurrency 1,8,32] [--engines ...] [--out DIR]

Every engine serves the same folder in bf16 and gets the same random-word prompts (~128 tokens)
and fixed output lengths (128 tokens), at each concurrency. Server engines are started as
subprocesses, benchmarked with modelport's load generator (`modelport.bench.run_load`), then
stopped with their whole process group. An engine that cannot run is recorded with the reason,
and the run goes on. Writes DIR/compare.json, DIR/compare.png and DIR/logs/<engine>.log.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from modelport import envs
from modelport.bench.comparison import (
    ComparisonRow,
    comparison_table,
    ratio_table,
    row_from_result,
    skipped_rows,
    throughput_ratio,
)
from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.loadgen import run_load
from modelport.bench.machine import foreign_cpu_percent, machine_info
from modelport.bench.process import ManagedServer, ServerStartError, free_port
from modelport.bench.report import result_to_dict
from modelport.bench.result import BenchResult
from modelport.launchers.engine_install import find_engine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / ".bench" / "smollm-135m"
ENGINES = ("modelport", "sequential", "transformers-serve", "vllm")
SERVED_NAME = "bench-model"
BUSY_CPU_PERCENT = 20.0  # foreign CPU use above which a run is flagged as possibly skewed

console = Console(stderr=True)


@dataclass
class Settings:
    model: Path
    engines: list[str]
    concurrencies: list[int]
    prompt_tokens: int
    output_tokens: int
    num_requests: int | None
    sequential_requests: int
    endpoint: Endpoint
    dtype: str
    out: Path
    vllm_python: Path | None
    vllm_kv_cache_gib: int
    tserve_num_blocks: int | None
    tserve_block_size: int
    tserve_max_batch_tokens: int
    ready_timeout_s: float
    modelport_args: list[str] = field(default_factory=list)

    def requests_at(self, concurrency: int) -> int:
        return self.num_requests or max(2 * concurrency, 8)

    def to_dict(self) -> dict[str, Any]:
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        d["endpoint"] = self.endpoint.value
        return d


@dataclass
class PeerSpec:
    """How to start one server engine and what to send it."""

    argv: list[str]
    port: int
    env: dict[str, str]
    model_id: str
    ignore_eos: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)
    health_path: str = "/health"


# --------------------------------------------------------------------------- peers


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def modelport_spec(s: Settings) -> PeerSpec | str:
    port = free_port()
    argv = [sys.executable, "-m", "modelport.cli.main", "serve", str(s.model), "--port", str(port)]
    argv += [
        "--dtype",
        s.dtype,
        "--served-model-name",
        SERVED_NAME,
        "--log-level",
        "warning",
        *s.modelport_args,
    ]
    return PeerSpec(argv=argv, port=port, env=base_env(), model_id=SERVED_NAME)


def transformers_serve_spec(s: Settings) -> PeerSpec | str:
    exe = Path(sys.executable).with_name("transformers")
    cli = str(exe) if exe.exists() else shutil.which("transformers")
    if cli is None:
        return "`transformers` CLI not found (pip install 'transformers[serving]')"
    try:
        help_text = subprocess.run([cli, "serve", "--help"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`transformers serve --help` failed: {exc}"
    if help_text.returncode != 0:
        return "`transformers serve` unavailable: " + (help_text.stderr or help_text.stdout).strip()[-300:]
    needed = [
        "--continuous-batching",
        "--cb-num-blocks",
        "--cb-block-size",
        "--cb-max-batch-tokens",
        "--dtype",
    ]
    missing = [flag for flag in needed if flag not in help_text.stdout]
    if missing:
        return f"`transformers serve` lacks flags {missing}"
    # enough KV blocks for every sequence of the largest concurrency, so the cache does not cap the batch
    per_seq = s.prompt_tokens + s.output_tokens + 64
    blocks = s.tserve_num_blocks or max(64, math.ceil(max(s.concurrencies) * per_seq / s.tserve_block_size))
    port = free_port()
    argv = [cli, "serve", str(s.model), "--device", "cpu", "--dtype", s.dtype, "--continuous-batching"]
    argv += ["--cb-num-blocks", str(blocks), "--cb-block-size", str(s.tserve_block_size)]
    argv += [
        "--cb-max-batch-tokens",
        str(s.tserve_max_batch_tokens),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # It rejects ignore_eos / min_tokens (422) but takes a GenerationConfig as a JSON string;
    # its GET /v1/models scans the HF cache (500 without one), so the model id is given.
    gen = {"max_new_tokens": s.output_tokens, "min_new_tokens": s.output_tokens, "do_sample": False}
    return PeerSpec(
        argv=argv,
        port=port,
        env=base_env(),
        model_id=str(s.model),
        ignore_eos=False,
        extra_body={"generation_config": json.dumps(gen)},
    )


def installed_vllm_python() -> Path | None:
    """The interpreter of the vLLM engine in MODELPORT_ENGINES_DIR (or the data dir's engines)."""
    engine = find_engine("vllm", envs.engines_dir())
    return Path(engine.python) if engine is not None and engine.python else None


def vllm_spec(s: Settings) -> PeerSpec | str:
    if s.vllm_python is None or not s.vllm_python.exists():
        where = s.vllm_python or f"the engines folder {envs.engines_dir()}"
        return f"no vLLM at {where} (run `modelport engines install vllm`, or give --vllm-python)"
    port = free_port()
    max_len = max(1024, s.prompt_tokens + s.output_tokens + 128)
    argv = [str(s.vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(s.model)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", SERVED_NAME]
    argv += ["--max-model-len", str(max_len), "--dtype", s.dtype]
    cache = ROOT / ".bench" / "vllm-cache"  # keeps torch.compile artifacts between runs
    env = base_env()
    env.update(
        {
            "VLLM_CPU_KVCACHE_SPACE": str(s.vllm_kv_cache_gib),
            "VLLM_CACHE_ROOT": str(cache),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
    )
    return PeerSpec(argv=argv, port=port, env=env, model_id=SERVED_NAME)


PEERS: dict[str, Callable[[Settings], PeerSpec | str]] = {
    "modelport": modelport_spec,
    "transformers-serve": transformers_serve_spec,
    "vllm": vllm_spec,
}


# --------------------------------------------------------------------------- runs


def load_config(s: Settings, url: str, concurrency: int, spec: PeerSpec | None) -> LoadConfig:
    return LoadConfig(
        url=url,
        model=spec.model_id if spec else None,
        concurrency=concurrency,
        num_requests=s.requests_at(concurrency),
        prompt_tokens=s.prompt_tokens,
        output_tokens=s.output_tokens,
        endpoint=s.endpoint,
        warmup=concurrency,
        ignore_eos=spec.ignore_eos if spec else True,
        extra_body=spec.extra_body if spec else {},
    )


def run_sequential_engine(s: Settings) -> tuple[list[ComparisonRow], dict[str, Any]]:
    from modelport.bench.sequential import run_sequential

    console.print(f"[bold]sequential[/]: transformers generate, {s.sequential_requests} requests one by one")
    config = LoadConfig(
        url="in-process",
        concurrency=1,
        num_requests=s.sequential_requests,
        prompt_tokens=s.prompt_tokens,
        output_tokens=s.output_tokens,
        endpoint=s.endpoint,
        warmup=1,
    )
    result = run_sequential(s.model, config, s.dtype)
    gc.collect()
    console.print(f"  {result.output_throughput:,.1f} tok/s, e2e p50 {_p50_ms(result):,.0f} ms")
    note = "one at a time (measured once)"
    rows = [row_from_result("sequential", c, result, note) for c in s.concurrencies]
    return rows, {"results": [result_to_dict(result)]}


def _p50_ms(result: BenchResult) -> float:
    return result.e2e.p50 * 1000 if result.e2e else float("nan")


def run_server_engine(engine: str, s: Settings) -> tuple[list[ComparisonRow], dict[str, Any]]:
    spec = PEERS[engine](s)
    if isinstance(spec, str):
        console.print(f"[yellow]{engine}: skipped[/]: {spec}")
        return skipped_rows(engine, s.concurrencies, f"skipped: {spec}"), {"skipped": spec}
    log = s.out / "logs" / f"{engine}.log"
    url = f"http://127.0.0.1:{spec.port}"
    server = ManagedServer(
        engine, spec.argv, url + spec.health_path, log, env=spec.env, ready_timeout_s=s.ready_timeout_s
    )
    console.print(f"[bold]{engine}[/]: starting ({' '.join(spec.argv)}), log {log}")
    rows: list[ComparisonRow] = []
    info: dict[str, Any] = {"argv": spec.argv, "log": str(log), "results": []}
    try:
        with server:
            info["startup_s"] = server.startup_s
            console.print(f"  ready after {server.startup_s:.0f} s")
            for c in s.concurrencies:
                config = load_config(s, url, c, spec)
                result = replace(asyncio.run(run_load(config)), engine=engine)
                info["results"].append(result_to_dict(result))
                rows.append(row_from_result(engine, c, result))
                console.print(
                    f"  concurrency {c}: {len(result.ok)}/{len(result.records)} ok, "
                    f"{result.output_throughput:,.1f} tok/s, e2e p50 {_p50_ms(result):,.0f} ms"
                )
                if not result.ok:
                    console.print(f"  [red]all failed[/]: {next(iter(result.error_counts()))}")
    except ServerStartError as exc:
        reason = str(exc).splitlines()[0]
        console.print(f"[red]{engine}: {exc}[/]")
        info["error"] = str(exc)
        done = {r.concurrency for r in rows}
        rows += skipped_rows(engine, [c for c in s.concurrencies if c not in done], f"failed: {reason}")
    finally:
        leftover = server.running_pids()
        if leftover:  # stop() kills the whole group; this is a belt-and-braces report
            console.print(f"[red]{engine}: processes still alive after stop: {leftover}[/]")
    return rows, info


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "model", nargs="?", type=Path, default=DEFAULT_MODEL, help=f"model folder (default {DEFAULT_MODEL})"
    )
    p.add_argument(
        "--engines", default=",".join(ENGINES), help="comma-separated subset of " + ", ".join(ENGINES)
    )
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrencies (default 1,8,32)")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--output-tokens", type=int, default=128)
    p.add_argument("--num-requests", type=int, default=None, help="per concurrency (default max(2*c, 8))")
    p.add_argument("--sequential-requests", type=int, default=4, help="requests for the sequential baseline")
    p.add_argument("--endpoint", choices=[e.value for e in Endpoint], default=Endpoint.completions.value)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "results")
    p.add_argument(
        "--vllm-python",
        type=Path,
        default=None,
        help="python of a vLLM install (default: the one `modelport engines install vllm` made)",
    )
    p.add_argument("--vllm-kv-cache-gib", type=int, default=1, help="VLLM_CPU_KVCACHE_SPACE")
    p.add_argument(
        "--tserve-num-blocks", type=int, default=None, help="default: enough for the top concurrency"
    )
    p.add_argument("--tserve-block-size", type=int, default=32)
    p.add_argument("--tserve-max-batch-tokens", type=int, default=512)
    p.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for a server's health")
    p.add_argument("--modelport-arg", action="append", default=[], help="extra `modelport serve` argument")
    a = p.parse_args(argv)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    if not (a.model / "config.json").exists():
        p.error(f"{a.model} has no config.json (build one: python benchmarks/build_smollm.py)")
    return Settings(
        model=a.model.resolve(),
        engines=engines,
        concurrencies=[int(c) for c in a.concurrency.split(",")],
        prompt_tokens=a.prompt_tokens,
        output_tokens=a.output_tokens,
        num_requests=a.num_requests,
        sequential_requests=a.sequential_requests,
        endpoint=Endpoint(a.endpoint),
        dtype=a.dtype,
        out=a.out,
        vllm_python=a.vllm_python or installed_vllm_python(),
        vllm_kv_cache_gib=a.vllm_kv_cache_gib,
        tserve_num_blocks=a.tserve_num_blocks,
        tserve_block_size=a.tserve_block_size,
        tserve_max_batch_tokens=a.tserve_max_batch_tokens,
        ready_timeout_s=a.ready_timeout,
        modelport_args=a.modelport_arg,
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    # turn SIGTERM into KeyboardInterrupt so `with ManagedServer` blocks stop their servers
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    s.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info(s.vllm_python if "vllm" in s.engines else None)
    console.print(f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine.get('torch')}")
    rows: list[ComparisonRow] = []
    runs: dict[str, Any] = {}
    started = time.time()
    interrupted = False
    for engine in s.engines:
        busy_before = foreign_cpu_percent()
        if busy_before > BUSY_CPU_PERCENT:
            console.print(
                f"[yellow]other processes use {busy_before:.0f}% CPU before {engine}; results may be off[/]"
            )
        try:
            if engine == "sequential":
                engine_rows, info = run_sequential_engine(s)
            else:
                engine_rows, info = run_server_engine(engine, s)
        except KeyboardInterrupt:
            # servers are already stopped by their `with` blocks; report what was measured
            console.print(f"[red]interrupted during {engine}[/]")
            interrupted = True
            runs[engine] = {"error": "interrupted"}
            break
        except Exception as exc:  # one engine's crash must not lose the others' numbers
            console.print(f"[red]{engine} crashed[/]: {exc!r}")
            engine_rows = skipped_rows(engine, s.concurrencies, f"crashed: {exc!r}"[:300])
            info = {"error": traceback.format_exc()}
        rows += engine_rows
        info["foreign_cpu_percent"] = {"before": busy_before, "after": foreign_cpu_percent()}
        runs[engine] = info

    ratios = {
        str(c): {
            f"modelport/{base}": throughput_ratio(rows, "modelport", base, c)
            for base in ("sequential", "transformers-serve", "vllm")
        }
        for c in s.concurrencies
    }
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_s": time.time() - started,
        "interrupted": interrupted,
        "machine": machine,
        "settings": s.to_dict(),
        "rows": [r.to_dict() for r in rows],
        "ratios": ratios,
        "runs": runs,
    }
    json_path = s.out / "compare.json"
    json_path.write_text(json.dumps(report, indent=2))

    out = Console(width=None if sys.stdout.isatty() else 150)
    out.print(
        f"{machine['cpu']} · {machine['cores']} cores · torch {machine.get('torch')} · "
        f"transformers {machine.get('transformers')}"
        + (f" · vLLM {machine['vllm']}" if "vllm" in machine else "")
    )
    lengths = f"~{s.prompt_tokens} prompt / {s.output_tokens} output tokens"
    title = f"{s.model.name}, {s.dtype}, {s.endpoint.value}, {lengths}"
    out.print(comparison_table(rows, title=title))
    out.print(ratio_table(rows, "modelport", ["sequential", "transformers-serve", "vllm"], s.concurrencies))
    try:
        from modelport.bench.plot import plot_comparison

        png = plot_comparison(rows, s.out / "compare.png", title=f"output tok/s · {title}")
        out.print(f"wrote {json_path} and {png}")
    except RuntimeError as exc:
        out.print(f"wrote {json_path}; no plot: {exc}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
