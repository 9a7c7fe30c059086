"""What the gateway costs: the same replica measured directly and through its endpoint URL.

    python benchmarks/gateway_overhead.py [MODEL_DIR] [--concurrency 64] [--requests 640]
        [--rounds 3] [--output-tokens 16] [--prompt-tokens 32] [--no-stream] [--pin]
        [--baseline-src DIR] [--out DIR]

Starts `modelport up --no-demo`, creates one endpoint on MODEL_DIR (default: the offline tiny
demo model, whose engine is fast, so the gateway's share shows), creates an API key (so every
gateway request pays for authentication, limits and metering), then alternates direct and
gateway runs of modelport's load generator at the same concurrency, `--rounds` times each.
Reports per-round and median p50 latency, TTFT and throughput, the added p50 latency and the
throughput ratio, and a chunking probe: SSE events per network read, direct vs gateway (equal
means the gateway adds no batching). Writes DIR/gateway_overhead.json.

`--pin` gives the engine a core of its own (the replica's every thread on CPU 0; the control
plane with the gateway, and this load generator, on the other CPUs), as on a machine where the
engine runs on an accelerator or other cores: the gateway's CPU then no longer comes out of
the engine's time. Both the direct and the gateway rounds run with the same pinning.

`--baseline-src DIR` (another tree's `src` folder, e.g. a worktree of the commit before a
gateway change) starts a second `modelport up` whose Python, and every replica it starts,
imports modelport from DIR, on the same model. The rounds then rotate direct / gateway (this
tree) / baseline (DIR's gateway), so the machine's drifts hit all three alike, and the report
puts the two gateways side by side: medians over the rounds of p50 latency, throughput, the
mean of `modelport_gateway_overhead_seconds` per part in the round, and the CPU of `modelport
up` per gateway request (less that control plane's CPU in the same round's direct run, its
background), with the this-tree/baseline ratios. Every Python of both sides logs which
modelport it imported (a sitecustomize put on their PYTHONPATH; a forked replica logs at the
fork), and the run stops if one of them did not import its own tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

import modelport
from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.loadgen import run_load
from modelport.bench.process import ManagedServer, free_port
from modelport.bench.result import BenchResult
from modelport.runtime.replica_token import replica_token

ROOT = Path(__file__).resolve().parent.parent
console = Console(stderr=True)

# the histogram's part labels, by what they measure (a redesign may rename them)
PARTS = {"before": ("before", "before_upstream"), "relay": ("relay",)}
IMPORT_LOG_VAR = "GATEWAY_BENCH_IMPORT_LOG"
# put on both control planes' PYTHONPATH with --baseline-src: every Python they start (the
# control plane, its preloaded Python, spawned replicas) logs the modelport it imports, as
# the import system resolves it; a replica forked from the preloaded Python logs at the fork
IMPORT_HOOK = f'''\
"""Written by benchmarks/gateway_overhead.py: log which modelport this Python imports."""
import os
import sys

_LOG = os.environ.get("{IMPORT_LOG_VAR}", "")


def _note(event, origin):
    with open(_LOG, "a") as log:
        log.write(f"{{os.getpid()}}\\t{{event}}\\t{{origin}}\\n")


class _ModelportImport:
    def find_spec(self, name, path=None, target=None):
        if name != "modelport":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                _note("import", spec.origin)
                return spec
        _note("import", None)
        return None


def _forked():
    _note("fork", getattr(sys.modules.get("modelport"), "__file__", None))


if _LOG:
    sys.meta_path.insert(0, _ModelportImport())
    os.register_at_fork(after_in_child=_forked)
'''


@dataclass
class Side:
    """One control plane: `gateway` (this tree) or `baseline` (--baseline-src)."""

    name: str
    server: ManagedServer
    data: Path
    port: int
    src: Path | None  # the modelport tree its Pythons must import (None: not checked)
    api: httpx.Client = field(init=False)
    key: str = ""

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/endpoints/default/bench"

    def connect(self) -> None:
        token = (self.data / "admin-token").read_text().strip()
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", headers={"authorization": f"Bearer {token}"}
        )


def control_plane(name: str, env: dict[str, str], log_path: Path, src: Path | None) -> Side:
    data = Path(tempfile.mkdtemp(prefix=f"mp-gw-bench-{name}-"))
    port = free_port()
    argv = [sys.executable, "-m", "modelport.cli.main", "up", "--no-demo", "--port", str(port)]
    server = ManagedServer(
        f"modelport-up-{name}",
        [*argv, "--log-level", "warning"],
        f"http://127.0.0.1:{port}/health",
        log_path,
        env={**env, "MODELPORT_DATA_DIR": str(data)},
    )
    return Side(name, server, data, port, src)


def replica(up_pid: int) -> psutil.Process:
    for child in psutil.Process(up_pid).children(recursive=True):
        cmd = child.cmdline()
        if "serve" in cmd and "--port" in cmd:
            return child
    raise RuntimeError("no replica process found under modelport up")


def replica_port(up_pid: int) -> int:
    cmd = replica(up_pid).cmdline()
    return int(cmd[cmd.index("--port") + 1])


def pin(pid: int, cpus: set[int]) -> int:
    """Move every thread of a process to `cpus` (threads made later inherit from their creator);
    returns how many threads were moved."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    for tid in tids:
        os.sched_setaffinity(tid, cpus)
    return len(tids)


def wait_running(api: httpx.Client, name: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = api.get(f"/v2/endpoint/default/{name}").json()["status"]
        if status["state"] == "running":
            return
        time.sleep(0.5)
    raise TimeoutError(f"endpoint {name} not running after {timeout_s} s")


def imports_seen(log_path: Path) -> dict[int, list[tuple[str, str]]]:
    """pid -> [(event, modelport's file)] from the import hook's log."""
    seen: dict[int, list[tuple[str, str]]] = {}
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            pid, event, origin = line.split("\t")
            seen.setdefault(int(pid), []).append((event, origin))
    return seen


def import_check(side: Side, log_path: Path) -> list[dict[str, Any]]:
    """Each process of a side's tree: its role, what it says it imported, its PYTHONPATH and cwd.
    Raises SystemExit when the control plane or a replica imported anything but `side.src`."""
    seen = imports_seen(log_path)
    replica_pid = replica(side.pid).pid
    rows = []
    for proc in [psutil.Process(side.pid), *psutil.Process(side.pid).children(recursive=True)]:
        with proc.oneshot():
            title = " ".join(proc.cmdline())
            role = (
                "control plane" if proc.pid == side.pid
                else "replica" if proc.pid == replica_pid
                else "preloaded Python" if "preload_server" in title
                else "other"
            )  # fmt: skip
            rows.append({
                "pid": proc.pid,
                "ppid": proc.ppid(),
                "role": role,
                "imported": [origin for _, origin in seen.get(proc.pid, [])],
                "events": [event for event, _ in seen.get(proc.pid, [])],
                "environ_pythonpath": proc.environ().get("PYTHONPATH"),
                "cwd": proc.cwd(),
                "cmdline": title[:200],
            })  # fmt: skip
    if side.src is not None:
        want = str(side.src / "modelport" / "__init__.py")
        for row in rows:
            wrong = [origin for origin in row["imported"] if origin != want]
            missing = row["role"] in ("control plane", "replica") and not row["imported"]
            if wrong or missing:
                raise SystemExit(
                    f"{side.name}: {row['role']} {row['pid']} imported {row['imported'] or 'nothing seen'}, "
                    f"not {want}"
                )
    return rows


async def chunking_probe(url: str, headers: dict[str, str], streams: int, tokens: int) -> float:
    """Mean SSE events per network read over `streams` sequential streams."""
    reads = events = 0
    body = {"model": "bench", "prompt": "hello", "max_tokens": tokens, "ignore_eos": True, "stream": True}
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(streams):
            async with client.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as r:
                async for chunk in r.aiter_raw():
                    reads += 1
                    events += chunk.count(b"data:")
    return events / reads if reads else 0.0


@dataclass
class Histogram:
    """One part of `modelport_gateway_overhead_seconds`, summed over its label sets."""

    total: float = 0.0
    count: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count


def overhead_histograms(metrics_text: str) -> dict[str, Histogram]:
    """part label -> its histogram, from a Prometheus text page."""
    parts: dict[str, Histogram] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("modelport_gateway_overhead_seconds") or 'part="' not in line:
            continue
        part = line.split('part="', 1)[1].split('"', 1)[0]
        histogram = parts.setdefault(part, Histogram())
        value = float(line.rsplit(" ", 1)[1])
        if "_bucket" in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            upper = float("inf") if bound == "+Inf" else float(bound)
            histogram.buckets[upper] = histogram.buckets.get(upper, 0.0) + value
        elif "_sum" in line:
            histogram.total += value
        elif "_count" in line:
            histogram.count += value
    return parts


def part_histogram(parts: dict[str, Histogram], part: str) -> Histogram:
    """The histogram of one of PARTS, under whichever of its label names the gateway uses."""
    return next((parts[label] for label in PARTS[part] if label in parts), Histogram())


def processing_time(api: httpx.Client, part: str) -> dict[str, float | None]:
    """The gateway's own processing per request (its histogram): mean and the p50/p99 bucket bounds."""
    histogram = part_histogram(overhead_histograms(api.get("/metrics").text), part)
    count = histogram.count

    def bound(q: float) -> float | None:
        ordered = sorted(histogram.buckets.items())
        return next((b * 1000 for b, c in ordered if c >= q * count), None) if count else None

    return {
        "requests": count,
        "mean_ms": histogram.total / count * 1000 if count else None,
        "p50_at_most_ms": bound(0.5),
        "p99_at_most_ms": bound(0.99),
    }


def overhead_means_ms(before: dict[str, Histogram], after: dict[str, Histogram]) -> dict[str, float | None]:
    """Mean processing per request between two scrapes, per part of PARTS."""
    means: dict[str, float | None] = {}
    for part in PARTS:
        start, end = part_histogram(before, part), part_histogram(after, part)
        count = end.count - start.count
        means[part] = (end.total - start.total) / count * 1000 if count else None
    return means


def cpu_seconds(pid: int) -> float:
    return float(sum(psutil.Process(pid).cpu_times()[:2]))


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs; guest time is inside user)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def own_cpu_seconds(sides: list[Side]) -> dict[int, float]:
    """CPU seconds so far of this script and of every process of the control planes' trees."""
    procs = [psutil.Process()]
    for side in sides:
        up = psutil.Process(side.pid)
        procs += [up, *up.children(recursive=True)]
    seconds = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            seconds[proc.pid] = float(sum(proc.cpu_times()[:2]))
    return seconds


def foreign_cpu_percent(
    busy_s: float, own_before: dict[int, float], own_after: dict[int, float], wall_s: float
) -> float:
    """CPU the rest of the machine used during a run, in % of one core (noise: 2 cores here)."""
    own_s = sum(after - own_before.get(pid, 0.0) for pid, after in own_after.items())
    return max(0.0, (busy_s - own_s) / wall_s * 100)


def summary(result: BenchResult) -> dict[str, Any]:
    e2e, ttft = result.e2e, result.ttft
    return {
        "ok": len(result.ok),
        "failed": len(result.failed),
        "p50_ms": e2e.p50 * 1000 if e2e else None,
        "p95_ms": e2e.p95 * 1000 if e2e else None,
        "ttft_p50_ms": ttft.p50 * 1000 if ttft else None,
        "requests_per_s": result.request_throughput,
        "tokens_per_s": result.output_throughput,
        "errors": result.error_counts(),
    }


def round_order(round_index: int, variants: list[str]) -> list[str]:
    """Two variants alternate which goes first; three rotate, so each takes every place once."""
    if len(variants) == 2:
        return variants if round_index % 2 == 0 else variants[::-1]
    shift = round_index % len(variants)
    return variants[shift:] + variants[:shift]


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def comparison(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the rounds per variant, and this tree's gateway over the baseline's."""
    medians: dict[str, dict[str, float | None]] = {}
    for name, rounds in results.items():
        medians[name] = {
            "p50_ms": median_or_none([r["p50_ms"] for r in rounds]),
            "requests_per_s": median_or_none([r["requests_per_s"] for r in rounds]),
            "foreign_cpu_pct": median_or_none([r["foreign_cpu_pct"] for r in rounds]),
        }
        if name == "direct":
            continue
        for part in PARTS:
            medians[name][f"overhead_{part}_mean_ms"] = median_or_none(
                [r["overhead_mean_ms"][part] for r in rounds]
            )
        medians[name]["gateway_cpu_ms_per_request"] = median_or_none(
            [r["gateway_cpu_ms_per_request"] for r in rounds]
        )

    def ratio(metric: str) -> float | None:
        current, baseline = medians["gateway"][metric], medians["baseline"][metric]
        return current / baseline if current is not None and baseline else None

    return {
        "median": medians,
        "ratio_current_to_baseline": {
            metric: ratio(metric) for metric in medians["gateway"] if metric != "foreign_cpu_pct"
        },
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def comparison_table(compared: dict[str, Any], rounds: int, baseline_src: Path) -> Table:
    table = Table(title=f"this tree vs baseline ({baseline_src}), {rounds} rounds (medians)")
    columns = {
        "p50_ms": ("p50 ms", ".2f"),
        "requests_per_s": ("req/s", ".1f"),
        "overhead_before_mean_ms": ("before ms", ".3f"),
        "overhead_relay_mean_ms": ("relay ms", ".3f"),
        "gateway_cpu_ms_per_request": ("CPU ms/req", ".2f"),
        "foreign_cpu_pct": ("others %", ".0f"),
    }
    table.caption = (
        "before / relay: the gateway's own time per request (overhead histogram, mean in the round); "
        "CPU: its control plane's, background taken off; others: the rest of the machine, % of a core"
    )
    table.add_column("")
    for title, _ in columns.values():
        table.add_column(title, justify="right")
    labels = {"direct": "direct", "gateway": "this tree", "baseline": "baseline"}
    for name, label in labels.items():
        row = compared["median"][name]
        table.add_row(label, *(fmt(row.get(metric), spec) for metric, (_, spec) in columns.items()))
    ratios = compared["ratio_current_to_baseline"]
    ratio_columns = [metric for metric in columns if metric != "foreign_cpu_pct"]
    table.add_row("this/baseline", *(fmt(ratios.get(metric), ".3f") for metric in ratio_columns), "")
    return table


def print_imports(checks: dict[str, list[dict[str, Any]]]) -> None:
    """One line per process (a table would cut the paths at 80 columns)."""
    console.print("which modelport each process imported (import hook), and its /proc environ PYTHONPATH:")
    for side, rows in checks.items():
        for row in rows:
            imported = ", ".join(row["imported"]) or "nothing seen"
            console.print(
                f"  {side} {row['role']} {row['pid']} ({','.join(row['events']) or '-'}): {imported}; "
                f"PYTHONPATH={row['environ_pythonpath']}; cwd={row['cwd']}",
                soft_wrap=True,
            )


def tree_state(src: Path) -> dict[str, Any]:
    """The commit a source tree is at and its uncommitted files (the numbers are of the files)."""

    def git(*command: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(src), *command], capture_output=True, text=True, timeout=30
            )
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    changed = git("status", "--porcelain", "--", ".")
    return {
        "src": str(src),
        "head": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": None if changed is None else len(changed.splitlines()),
    }


def measure(
    args: argparse.Namespace, sides: list[Side], targets: dict[str, tuple[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """`--rounds` rounds of every target in `targets` (direct first), one load run each."""
    current = sides[0]
    variants = list(targets)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    requests_per_run = args.requests + args.concurrency  # timed + warm-up
    for round_index in range(args.rounds):
        for name in round_order(round_index, variants):
            url, api_key = targets[name]
            config = LoadConfig(
                url=url,
                model="bench",
                api_key=api_key,
                concurrency=args.concurrency,
                num_requests=args.requests,
                prompt_tokens=args.prompt_tokens,
                output_tokens=args.output_tokens,
                stream=not args.no_stream,
                endpoint=Endpoint.completions,
                warmup=args.concurrency,
            )
            # scraped outside the CPU window, so the scrapes are not counted as gateway work
            histograms_before = {s.name: overhead_histograms(s.api.get("/metrics").text) for s in sides}
            own_before, busy_before = own_cpu_seconds(sides), busy_seconds()
            cpu_before = {s.name: cpu_seconds(s.pid) for s in sides}
            started = time.monotonic()
            result = summary(asyncio.run(run_load(config)))
            wall_s = time.monotonic() - started
            busy_s = busy_seconds() - busy_before
            result["foreign_cpu_pct"] = foreign_cpu_percent(
                busy_s, own_before, own_cpu_seconds(sides), wall_s
            )
            cpu_s = {s.name: cpu_seconds(s.pid) - cpu_before[s.name] for s in sides}
            # CPU ms `modelport up` used per timed+warmup request (direct: its background)
            result["up_cpu_ms_per_request"] = (
                cpu_s[name if name != "direct" else current.name] * 1000 / requests_per_run
            )
            if len(sides) > 1:
                result["cpu_s_by_up"] = cpu_s
            if name != "direct":
                side = next(s for s in sides if s.name == name)
                histograms_after = overhead_histograms(side.api.get("/metrics").text)
                result["overhead_mean_ms"] = overhead_means_ms(histograms_before[name], histograms_after)
                result["overhead_parts_seen"] = sorted(histograms_after)
            result["wall_s"] = wall_s
            results[name].append(result)
            console.print(f"round {round_index + 1} {name:8s} {json.dumps(result)}")
        if len(sides) > 1:
            for side in sides:
                own = results[side.name][round_index]
                idle = [results[other][round_index] for other in variants if other != side.name]
                own |= gateway_cpu(side.name, own, idle, requests_per_run)
    return results


def gateway_cpu(
    side: str, own: dict[str, Any], idle: list[dict[str, Any]], requests: int
) -> dict[str, float]:
    """A control plane's CPU per request of its own gateway run, less its background: its CPU per
    second in the same round's runs that went elsewhere (direct, the other gateway), times the
    run's length (per second, not per request: the runs differ in length)."""
    background_per_s = sum(r["cpu_s_by_up"][side] for r in idle) / sum(r["wall_s"] for r in idle)
    gateway_s = own["cpu_s_by_up"][side] - background_per_s * own["wall_s"]
    return {
        "background_cpu_ms_per_s": background_per_s * 1000,
        "gateway_cpu_ms_per_request": gateway_s * 1000 / requests,
    }


def hook_env(env: dict[str, str], src: Path, hook_dir: Path, log_path: Path) -> dict[str, str]:
    """`env` for a control plane that must import modelport from `src` and log what it imports."""
    path = [str(src), str(hook_dir), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(path), IMPORT_LOG_VAR: str(log_path)}


@contextlib.contextmanager
def running(sides: list[Side]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for side in sides:
            stack.enter_context(side.server)
            side.connect()
        yield


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument(
        "--pin", action="store_true", help="engine on CPU 0; gateway and load generator on the rest"
    )
    parser.add_argument(
        "--engine-env", action="append", default=[], metavar="K=V", help="replica environment (repeatable)"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        metavar="DIR",
        help="also measure the gateway of the modelport in DIR (a tree's src folder), same model",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "results" / "gateway")
    args = parser.parse_args()
    started_at = time.monotonic()

    model = args.model
    if model is None:
        from modelport.models.demo import ensure_demo_model

        model = ensure_demo_model(ROOT / ".bench" / "tiny")
    model = model.resolve()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    import_logs: dict[str, Path] = {}
    if args.baseline_src is None:
        sides = [control_plane("gateway", env, args.out / "logs" / "up.log", None)]
    else:
        baseline_src = args.baseline_src.resolve()
        if not (baseline_src / "modelport" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-src {baseline_src}: no modelport package in it")
        current_src = Path(modelport.__file__).resolve().parent.parent
        if current_src == baseline_src:
            console.print(f"[yellow]--baseline-src is this tree's own src ({current_src})[/yellow]")
        hook_dir = Path(tempfile.mkdtemp(prefix="mp-gw-bench-hook-"))
        (hook_dir / "sitecustomize.py").write_text(IMPORT_HOOK)
        sides = []
        for name, src in (("gateway", current_src), ("baseline", baseline_src)):
            import_logs[name] = hook_dir / f"imports-{name}.log"
            side_env = hook_env(env, src, hook_dir, import_logs[name])
            log_name = "up.log" if name == "gateway" else "up-baseline.log"
            sides.append(control_plane(name, side_env, args.out / "logs" / log_name, src))
    current = sides[0]
    # at the start: the processes import their trees as they are now (edits later are not run)
    trees = {side.name: tree_state(side.src) for side in sides if side.src is not None}
    variants = ["direct", *(side.name for side in sides)]
    others = set(range(os.cpu_count() or 1)) - {0}
    if args.pin and not others:
        raise SystemExit("--pin needs at least 2 CPUs")
    imports: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pinning: dict[str, Any] = {}
    with running(sides):
        engine_env = dict(pair.split("=", 1) for pair in args.engine_env)
        if args.pin:  # one core: one torch thread (two would spin against each other)
            engine_env.setdefault("MODELPORT_TORCH_THREADS", "1")
        for side in sides:
            if args.pin:  # a replica spawned (not forked) from here inherits CPU 0
                pin(side.pid, {0})
            created = side.api.post(
                "/v2/endpoint/default",
                json={"name": "bench", "model": {"repository": str(model), "env": engine_env}},
            )
            created.raise_for_status()
        for side in sides:
            wait_running(side.api, "bench")
            created_key = side.api.post("/v2/keys", json={"name": "bench"})
            created_key.raise_for_status()
            side.key = created_key.json()["key"]
        if args.pin:
            # a replica forked from the preloaded Python has that Python's CPUs: pin it here; then
            # the control plane and everything else of its tree leave CPU 0
            for side in sides:
                engine = replica(side.pid)
                pinning[side.name] = {"replica_cpus_as_started": sorted(engine.cpu_affinity())}
                pin(engine.pid, {0})
                for proc in [psutil.Process(side.pid), *psutil.Process(side.pid).children(recursive=True)]:
                    if proc.pid != engine.pid:
                        pin(proc.pid, others)
                pinning[side.name]["replica_cpus"] = sorted(engine.cpu_affinity())
            os.sched_setaffinity(0, others)
            console.print(f"pinned: engines on CPU 0, gateways and load generator on {sorted(others)}")
        if import_logs:
            imports["after_deploy"] = {s.name: import_check(s, import_logs[s.name]) for s in sides}
            print_imports(imports["after_deploy"])
        # a replica answers only callers with its own token (derived from its id; the gateway
        # sends it): the direct runs send it too, so both sides pay for the same check
        (record,) = current.api.get("/v2/endpoint/default/bench/logs").json()["replicas"]
        own_token = replica_token(record["id"], current.data / "replica-secret")
        targets = {"direct": (f"http://127.0.0.1:{replica_port(current.pid)}", own_token)}
        targets |= {side.name: (side.endpoint_url, side.key) for side in sides}
        results = measure(args, sides, targets)
        processing = {side.name: {part: processing_time(side.api, part) for part in PARTS} for side in sides}
        chunking = {
            name: asyncio.run(
                chunking_probe(url, {"authorization": f"Bearer {k}"} if k else {}, streams=8, tokens=64)
            )
            for name, (url, k) in targets.items()
        }
        if import_logs:
            imports["after_rounds"] = {s.name: import_check(s, import_logs[s.name]) for s in sides}

    def med(name: str, metric: str) -> float:
        return float(statistics.median(r[metric] for r in results[name]))

    added = [g["p50_ms"] - d["p50_ms"] for d, g in zip(results["direct"], results["gateway"], strict=True)]
    ratio = [
        g["requests_per_s"] / d["requests_per_s"]
        for d, g in zip(results["direct"], results["gateway"], strict=True)
    ]
    report: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "settings": vars(args) | {"model": str(model), "out": str(args.out),
                                  "baseline_src": str(args.baseline_src) if args.baseline_src else None},
        "rounds": results,
        "median": {
            "direct_p50_ms": med("direct", "p50_ms"),
            "gateway_p50_ms": med("gateway", "p50_ms"),
            "added_p50_ms": statistics.median(added),
            "direct_rps": med("direct", "requests_per_s"),
            "gateway_rps": med("gateway", "requests_per_s"),
            "throughput_ratio": statistics.median(ratio),
            "gateway_cpu_ms_per_request": med("gateway", "up_cpu_ms_per_request")
            - med("direct", "up_cpu_ms_per_request"),
        },
        "sse_events_per_read": chunking,
        "gateway_processing": processing["gateway"],
        "pinning": pinning,
    }  # fmt: skip
    table = Table(title=f"gateway vs direct, {args.concurrency} concurrent, {args.rounds} rounds (medians)")
    for column in ("", "p50 ms", "TTFT p50 ms", "req/s", "tok/s", "SSE events/read"):
        table.add_column(column, justify="right")
    for name in variants:
        table.add_row(
            name,
            f"{med(name, 'p50_ms'):.2f}",
            f"{med(name, 'ttft_p50_ms'):.2f}" if results[name][0]["ttft_p50_ms"] is not None else "-",
            f"{med(name, 'requests_per_s'):.1f}",
            f"{med(name, 'tokens_per_s'):.0f}",
            f"{chunking[name]:.2f}",
        )
    console.print(table)
    console.print(
        f"added p50: {report['median']['added_p50_ms']:.2f} ms "
        f"(rounds: {', '.join(f'{a:.2f}' for a in added)}); "
        f"throughput gateway/direct: {report['median']['throughput_ratio']:.3f}; "
        f"gateway CPU per request: {report['median']['gateway_cpu_ms_per_request']:.2f} ms"
    )
    for side_name, parts in processing.items():
        for part, times in parts.items():
            console.print(
                f"{side_name}'s own processing per request ({part}, whole run): "
                f"mean {fmt(times['mean_ms'], '.3f')} ms, "
                f"p50 <= {fmt(times['p50_at_most_ms'], '.1f')} ms, "
                f"p99 <= {fmt(times['p99_at_most_ms'], '.1f')} ms"
            )
    if args.baseline_src is not None:
        report["baseline_processing"] = processing["baseline"]
        report["comparison"] = comparison(results) | {"trees": trees, "imports": imports}
        console.print(comparison_table(report["comparison"], args.rounds, args.baseline_src))
    report["wall_s"] = time.monotonic() - started_at
    args.out.mkdir(parents=True, exist_ok=True)
    for log_path in import_logs.values():  # the evidence behind report["comparison"]["imports"]
        (args.out / "logs" / log_path.name).write_text(log_path.read_text())
    if import_logs:
        shutil.rmtree(next(iter(import_logs.values())).parent)
    (args.out / "gateway_overhead.json").write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out / 'gateway_overhead.json'} ({report['wall_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
