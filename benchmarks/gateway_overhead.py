"""What the gateway costs: the same replica measured directly and through its endpoint URL.

    python benchmarks/gateway_overhead.py [MODEL_DIR] [--concurrency 64] [--requests 640]
        [--rounds 3] [--output-tokens 16] [--prompt-tokens 32] [--no-stream] [--pin] [--out DIR]

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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.loadgen import run_load
from modelport.bench.process import ManagedServer, free_port
from modelport.bench.result import BenchResult
from modelport.runtime.replica_token import replica_token

ROOT = Path(__file__).resolve().parent.parent
console = Console(stderr=True)


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


def processing_time(api: httpx.Client, part: str) -> dict[str, float]:
    """The gateway's own processing per request (its histogram): mean and the p50/p99 bucket bounds."""
    text = api.get("/metrics").text
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in text.splitlines():
        if not line.startswith("modelport_gateway_overhead_seconds") or f'part="{part}"' not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if "_bucket" in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), value))
        elif "_sum" in line:
            total = value
        elif "_count" in line:
            count = value

    def bound(q: float) -> float:
        return next(b for b, c in sorted(buckets) if c >= q * count) * 1000

    return {
        "requests": count,
        "mean_ms": total / count * 1000,
        "p50_at_most_ms": bound(0.5),
        "p99_at_most_ms": bound(0.99),
    }


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
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "results" / "gateway")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="mp-gw-bench-"))
    model = args.model
    if model is None:
        from modelport.models.demo import ensure_demo_model

        model = ensure_demo_model(ROOT / ".bench" / "tiny")
    model = model.resolve()
    port = free_port()
    env = {**os.environ, "MODELPORT_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    up = ManagedServer(
        "modelport-up",
        [
            sys.executable,
            "-m",
            "modelport.cli.main",
            "up",
            "--no-demo",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{port}/health",
        args.out / "logs" / "up.log",
        env=env,
    )
    results: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
    others = set(range(os.cpu_count() or 1)) - {0}
    if args.pin and not others:
        raise SystemExit("--pin needs at least 2 CPUs")
    with up:
        assert up.proc is not None
        if args.pin:  # the replica, spawned next, inherits CPU 0: its every thread starts there
            pin(up.proc.pid, {0})
        token = (data / "admin-token").read_text().strip()
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {token}"})
        engine_env = dict(pair.split("=", 1) for pair in args.engine_env)
        if args.pin:  # one core: one torch thread (two would spin against each other)
            engine_env.setdefault("MODELPORT_TORCH_THREADS", "1")
        created = api.post(
            "/v2/endpoint/default",
            json={"name": "bench", "model": {"repository": str(model), "env": engine_env}},
        )
        created.raise_for_status()
        wait_running(api, "bench")
        key = api.post("/v2/keys", json={"name": "bench"}).json()["key"]
        assert up.proc is not None
        if args.pin:  # the replica was spawned inside CPU 0; now the gateway leaves that core
            pin(up.proc.pid, others)
            os.sched_setaffinity(0, others)
            console.print(f"pinned: engine on CPU 0, gateway and load generator on {sorted(others)}")
        # a replica answers only callers with its own token (derived from its id; the gateway
        # sends it): the direct runs send it too, so both sides pay for the same check
        (record,) = api.get("/v2/endpoint/default/bench/logs").json()["replicas"]
        own_token = replica_token(record["id"], data / "replica-secret")
        targets = {
            "direct": (f"http://127.0.0.1:{replica_port(up.proc.pid)}", own_token),
            "gateway": (f"http://127.0.0.1:{port}/endpoints/default/bench", key),
        }
        for round_index in range(args.rounds):
            order = ["direct", "gateway"] if round_index % 2 == 0 else ["gateway", "direct"]
            for name in order:
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
                gateway_process = psutil.Process(up.proc.pid)
                cpu_before = sum(gateway_process.cpu_times()[:2])
                started = time.monotonic()
                result = summary(asyncio.run(run_load(config)))
                # CPU seconds `modelport up` used per timed+warmup request (direct runs: its background)
                result["up_cpu_ms_per_request"] = (
                    (sum(gateway_process.cpu_times()[:2]) - cpu_before)
                    * 1000
                    / (args.requests + args.concurrency)
                )
                result["wall_s"] = time.monotonic() - started
                results[name].append(result)
                console.print(f"round {round_index + 1} {name:8s} {json.dumps(result)}")
        processing = {part: processing_time(api, part) for part in ("before", "relay")}
        chunking = {
            name: asyncio.run(
                chunking_probe(url, {"authorization": f"Bearer {k}"} if k else {}, streams=8, tokens=64)
            )
            for name, (url, k) in targets.items()
        }

    def med(name: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name])

    added = [g["p50_ms"] - d["p50_ms"] for d, g in zip(results["direct"], results["gateway"], strict=True)]
    ratio = [
        g["requests_per_s"] / d["requests_per_s"]
        for d, g in zip(results["direct"], results["gateway"], strict=True)
    ]
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "settings": vars(args) | {"model": str(model), "out": str(args.out)},
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
        "gateway_processing": processing,
    }  # fmt: skip
    table = Table(title=f"gateway vs direct, {args.concurrency} concurrent, {args.rounds} rounds (medians)")
    for column in ("", "p50 ms", "TTFT p50 ms", "req/s", "tok/s", "SSE events/read"):
        table.add_column(column, justify="right")
    for name in ("direct", "gateway"):
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
    for part, times in processing.items():
        console.print(
            f"gateway's own processing per request ({part}): "
            f"mean {times['mean_ms']:.3f} ms, "
            f"p50 <= {times['p50_at_most_ms']:.1f} ms, p99 <= {times['p99_at_most_ms']:.1f} ms"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway_overhead.json").write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out / 'gateway_overhead.json'}")


if __name__ == "__main__":
    main()
