"""Cold start, measured: from "a request arrives at zero replicas" to its first token.

Three measurements of one model folder:
- the floor: reading the weight files from a warm page cache, plus importing the engine's
  libraries (torch and the model's transformers code) in a bare interpreter;
- a replica started directly (`modelport serve`): when each start phase ended (the replica's
  own `modelport:startup_phase_seconds`), when /health first answered, and the first token;
- through the gateway: an endpoint scaled to zero gets one streamed request; the time to its
  first token, split into wake → process spawned → the replica's phases → routed → first token.
  The control plane forks the replica from its preloaded Python (runtime/preload.py) unless
  MODELPORT_REPLICA_PRELOAD=0; whether it did, and what that Python holds idle, are recorded;
- with a warm standby (`warmStandby: 1`): the same request at zero, served by the loaded
  standby, and what the standby costs while idle (its resident memory).

Every figure is the median over `runs`; the raw runs are kept in the result. The floor's
samples are taken between the runs (this machine's speed drifts by tens of percent over
minutes, so a floor measured once, apart, would not be comparable).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from modelport.bench.process import ManagedServer, free_port
from modelport.engine.startup import PHASES

POLL_S = 0.01
Progress = Callable[[str], None]


@dataclass
class Floor:
    import_s: float  # torch + the model's transformers code, in a bare interpreter
    read_s: float  # the weight files, from a warm page cache
    weight_bytes: int

    @property
    def total_s(self) -> float:
        return self.import_s + self.read_s


@dataclass
class StartRun:
    """One cold start; every time in seconds from the request (gateway) or the spawn (direct)."""

    first_token_s: float
    spawned_s: float  # the replica's process was created
    phases: dict[str, float]  # end of each start phase
    healthy_s: float | None = None  # /health first answered 200 (direct runs)
    forked: bool | None = None  # forked from the control plane's preloaded Python (gateway runs)


@dataclass
class StandbyRun:
    first_token_s: float  # from the request at zero replicas, served by the standby
    rss_bytes: int  # what the idle standby holds in memory meanwhile


@dataclass
class ColdStartReport:
    model: str
    floor: Floor
    direct: list[StartRun] = field(default_factory=list)
    gateway: list[StartRun] = field(default_factory=list)
    standby: list[StandbyRun] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    preload_rss_bytes: int | None = None  # the control plane's preloaded Python, idle

    def median(self, runs: list[StartRun] | list[StandbyRun], key: str) -> float | None:
        values = [_get(run, key) for run in runs]
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["floor"]["total_s"] = self.floor.total_s
        gateway = self.median(self.gateway, "first_token_s")
        out["gateway_vs_floor"] = round(gateway / self.floor.total_s, 3) if gateway else None
        return out


def _get(run: StartRun | StandbyRun, key: str) -> float | None:
    if isinstance(run, StartRun) and key in PHASES:
        return run.phases.get(key)
    value = getattr(run, key)
    return float(value) if value is not None else None


# -- the floor -------------------------------------------------------------------------------
def engine_imports(model: Path) -> str:
    """Python that imports what the engine needs for this model, and nothing else."""
    model_type = json.loads((model / "config.json").read_text()).get("model_type", "llama")
    return (
        "import importlib, torch, transformers, transformers.modeling_utils\n"
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer\n"
        f"importlib.import_module('transformers.models.{model_type}.modeling_{model_type}')\n"
    )


class FloorSampler:
    """Samples of the floor's two parts, taken whenever `sample()` is called."""

    def __init__(self, model: Path) -> None:
        self.code = engine_imports(model)
        self.files = sorted(model.glob("*.safetensors"))
        self.imports: list[float] = []
        self.reads: list[float] = []
        _read_all(self.files)  # warm the page cache

    def sample(self) -> None:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", self.code], check=True, env=_env())
        self.imports.append(time.perf_counter() - start)
        start = time.perf_counter()
        _read_all(self.files)
        self.reads.append(time.perf_counter() - start)

    def floor(self) -> Floor:
        size = sum(f.stat().st_size for f in self.files)
        return Floor(statistics.median(self.imports), statistics.median(self.reads), size)


def _read_all(files: list[Path]) -> None:
    for path in files:
        with path.open("rb", buffering=0) as f:
            while f.read(16 * 2**20):
                pass


# -- a replica started directly ---------------------------------------------------------------
def direct_cold_start(model: Path, log_dir: Path) -> StartRun:
    port = free_port()
    argv = [sys.executable, "-m", "modelport.cli.main", "serve", str(model), "--port", str(port),
            "--any-model-name", "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with (log_dir / f"direct-{port}.log").open("wb") as log:
        spawned_at = time.time()
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )
        try:
            healthy = _poll_health(f"{base}/health", proc)
            first = first_token(base, {})
            created, phases = scrape_phases(base)
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            if proc.poll() is None:
                proc.kill()
    offset = created - spawned_at
    return StartRun(
        first_token_s=first - spawned_at,
        spawned_s=offset,
        phases={k: v + offset for k, v in phases.items()},
        healthy_s=healthy - spawned_at,
    )


def _poll_health(url: str, proc: subprocess.Popen[bytes]) -> float:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the replica exited with code {proc.returncode} before it was healthy")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return time.time()
        time.sleep(POLL_S)


def first_token(base: str, headers: dict[str, str]) -> float:
    """Wall-clock time of the first streamed token of a short completion."""
    body = {"model": "x", "prompt": "Hello", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{base}/v1/completions", json=body, headers=headers, timeout=600) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{base} answered {r.status_code}: {r.read().decode(errors='replace')[:300]}")
        for line in r.iter_lines():
            if line.startswith("data:"):
                return time.time()
    raise RuntimeError(f"{base} streamed no token")


def scrape_phases(base: str) -> tuple[float, dict[str, float]]:
    """The replica's creation time (unix) and its phases (seconds from creation)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    created = 0.0
    phases: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "modelport:startup_phase_seconds":
            phases.update({s.labels["phase"]: s.value for s in family.samples})
        elif family.name == "modelport:process_created_timestamp_seconds":
            created = family.samples[0].value
    if not created:
        raise RuntimeError(f"{base}/metrics has no start timeline: is it a modelport replica?")
    return created, phases


# -- through the gateway -----------------------------------------------------------------------
@contextlib.contextmanager
def cold_endpoint(
    model: Path, log_dir: Path, warm_standby: int = 0
) -> Iterator[tuple[httpx.Client, str, int]]:
    """`modelport up` in a throw-away data dir with one running endpoint "cold" on the model
    (min 0, max 1): the API client, the endpoint's URL and the control plane's pid."""
    data = Path(tempfile.mkdtemp(prefix="mp-cold-start-"))
    port = free_port()
    argv = [sys.executable, "-m", "modelport.cli.main", "up", "--no-demo", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    up = ManagedServer("modelport-up", argv, f"http://127.0.0.1:{port}/health", log_dir / "up.log",
                       env={**_env(), "MODELPORT_DATA_DIR": str(data)})  # fmt: skip
    with up:
        assert up.proc is not None
        url = f"http://127.0.0.1:{port}"
        token = (data / "admin-token").read_text().strip()
        api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60)
        scaling = {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 60, "warmStandby": warm_standby}
        spec = {"name": "cold", "type": "public", "model": {"repository": str(model)}}
        api.post("/v2/endpoint/default", json={**spec, "compute": {"scaling": scaling}}).raise_for_status()
        _wait_state(api, "running")
        yield api, f"{url}/endpoints/default/cold", up.proc.pid


def gateway_cold_starts(
    model: Path, runs: int, log_dir: Path, progress: Progress, between: Callable[[], None] = lambda: None
) -> tuple[list[StartRun], int | None]:
    """The runs, and the resident memory of the control plane's preloaded Python (if it has one)."""
    out = []
    preload_rss = None
    with cold_endpoint(model, log_dir) as (api, endpoint_url, up_pid):
        for i in range(runs):
            api.post("/v2/endpoint/default/cold/scale-to-zero").raise_for_status()
            _wait_state(api, "scaledToZero")
            _wait_no_replica(up_pid)
            between()
            time.sleep(1.0)  # let the machine settle after the replica's exit
            progress(f"gateway run {i + 1}/{runs}: request at zero replicas")
            sent = time.time()
            first = first_token(endpoint_url, {"x-scale-up-timeout": "600"})
            replica = _replica(up_pid)
            argv = replica.cmdline()
            created, phases = scrape_phases(f"http://127.0.0.1:{argv[argv.index('--port') + 1]}")
            offset = created - sent
            preloader = _preloader(up_pid)
            forked = preloader is not None and replica.ppid() == preloader.pid
            if preloader is not None:
                preload_rss = preloader.memory_info().rss
            out.append(
                StartRun(first - sent, offset, {k: v + offset for k, v in phases.items()}, forked=forked)
            )
    return out, preload_rss


def _preloader(up_pid: int) -> psutil.Process | None:
    for child in psutil.Process(up_pid).children():
        with contextlib.suppress(psutil.Error):
            if "modelport.runtime.preload_server" in child.cmdline():
                return child
    return None


def standby_starts(model: Path, runs: int, log_dir: Path, progress: Progress) -> list[StandbyRun]:
    out = []
    with cold_endpoint(model, log_dir, warm_standby=1) as (api, endpoint_url, up_pid):
        for i in range(runs):
            api.post("/v2/endpoint/default/cold/scale-to-zero").raise_for_status()
            _wait_state(api, "scaledToZero", standby=1)
            time.sleep(1.0)
            rss = sum(_tree_rss(p) for p in _replicas(up_pid))
            progress(f"warm standby run {i + 1}/{runs}: request at zero replicas")
            sent = time.time()
            first = first_token(endpoint_url, {"x-scale-up-timeout": "600"})
            out.append(StandbyRun(first - sent, rss))
    return out


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _wait_state(api: httpx.Client, state: str, timeout_s: float = 600, standby: int | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = api.get("/v2/endpoint/default/cold").json()["status"]
        if status["state"] == state and standby in (None, status.get("standbyReplica")):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the endpoint did not reach {state} in {timeout_s} s")


def _replicas(up_pid: int) -> list[psutil.Process]:
    found = []
    # a replica forked from the preloaded Python is a grandchild of `up`
    for child in psutil.Process(up_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "serve" in child.cmdline():
                found.append(child)
    return found


def _replica(up_pid: int) -> psutil.Process:
    found = _replicas(up_pid)
    if not found:
        raise RuntimeError("no replica process under modelport up")
    return found[0]


def _wait_no_replica(up_pid: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _replica(up_pid)
        except RuntimeError:
            return
        time.sleep(0.1)
    raise TimeoutError("the scaled-to-zero replica did not exit")


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def run_cold_start(model: Path, runs: int, log_dir: Path, progress: Progress) -> ColdStartReport:
    model = model.resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    sampler = FloorSampler(model)
    direct = []
    for i in range(runs):
        progress(f"floor sample and direct run {i + 1}/{runs}")
        sampler.sample()
        direct.append(direct_cold_start(model, log_dir))
    gateway, preload_rss = gateway_cold_starts(model, runs, log_dir, progress, between=sampler.sample)
    standby = standby_starts(model, runs, log_dir, progress)
    report = ColdStartReport(
        str(model), sampler.floor(), direct, gateway, standby, preload_rss_bytes=preload_rss
    )
    report.machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    return report
