"""Benchmark tooling: an OpenAI-compatible load generator, its statistics, report and plots.

Modules, one job each:

- ``config``: :class:`LoadConfig`, what one load run sends.
- ``prompts``: deterministic random-word prompts of about N tokens.
- ``sse``: parse an OpenAI server-sent-events stream into content / usage events.
- ``loadgen``: :func:`run_load`, the asyncio + httpx closed-loop load generator.
- ``result``: :class:`RequestRecord` and :class:`BenchResult`, the measurements.
- ``stats``: pure percentile / summary math.
- ``report``: a rich table and a JSON-ready dict of a result.
- ``plot``: PNG plots (needs matplotlib, the ``plot`` extra).
- ``process``: start / health-wait / stop a peer server subprocess (used by benchmarks/compare.py).
- ``comparison``: engine × concurrency rows, ratios and their table (used by benchmarks/compare.py).
- ``machine``: the CPU, versions and how busy the rest of the machine is (benchmarks/*compare.py).
"""

from __future__ import annotations

from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.loadgen import BenchError, run_load
from modelport.bench.result import BenchResult, RequestRecord

__all__ = ["BenchError", "BenchResult", "Endpoint", "LoadConfig", "RequestRecord", "run_load"]
