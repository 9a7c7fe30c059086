"""A replica's start, step by step: when each phase ended, in seconds since its process began.

Marked by the serve command, the loader and the engine; served on /metrics as
`modelport:startup_phase_seconds{phase=...}` so `modelport bench cold-start` (and anyone with
Prometheus) can see where a cold start goes. Phases, in order: `interpreter` (Python and the
CLI are up), `fetch` (the model's files found in the weight cache, or pulled into it when
missing), `imports` (torch and the model code), `weights` (weights read and on the device),
`kv_cache` (the KV pool allocated), `warmup` (a first forward pass ran), `app` (the HTTP app is
built; the server listens a few milliseconds later).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, Gauge

PHASES = ("interpreter", "fetch", "imports", "weights", "kv_cache", "warmup", "app")

_marked: set[str] = set()


def mark(phase: str) -> None:
    """Record the end of a phase (the first time only: a restarted engine keeps the first start)."""
    if phase not in _marked:
        _marked.add(phase)
        _phase_seconds.labels(phase).set(round(time.time() - _created, 4))


def process_created_at() -> float:
    """When this process was created (unix time), to ~10 ms: from its start tick and the uptime
    clock, since psutil's figure rests on a boot time rounded to the second."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):  # not Linux
        return float(psutil.Process().create_time())


_created = process_created_at()


# one registry for the process, filled as phases end (served on every /metrics scrape)
registry = CollectorRegistry()
_phase_seconds = Gauge(
    "modelport:startup_phase_seconds",
    "When each phase of this replica's start ended, in seconds since its process began.",
    ["phase"],
    registry=registry,
)
_created_gauge = Gauge(
    "modelport:process_created_timestamp_seconds",
    "When this replica's process was created (unix time).",
    registry=registry,
)
_created_gauge.set(_created)


def restart_clock() -> None:
    """Start the phases from now: for a replica forked from a pre-imported Python (whose module
    state, this clock included, was set up in the parent)."""
    global _created
    _created = process_created_at()
    _created_gauge.set(_created)
    _marked.clear()
    _phase_seconds.clear()
