"""Present a :class:`BenchResult`: a rich table for people, a JSON-ready dict for machines."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from modelport.bench.cold_start import ColdStartReport
from modelport.bench.result import BenchResult
from modelport.bench.stats import Summary

MS = 1000.0


def _ms(summary: Summary | None) -> dict[str, float] | None:
    return summary.scaled(MS).to_dict() if summary is not None else None


def result_to_dict(result: BenchResult, *, include_records: bool = True) -> dict[str, Any]:
    """Everything about a run as plain JSON types; latency summaries in milliseconds."""
    d: dict[str, Any] = {
        "engine": result.engine,
        "model": result.model,
        "config": result.config.to_dict(),
        "requests_ok": len(result.ok),
        "requests_failed": len(result.failed),
        "duration_s": result.duration_s,
        "total_output_tokens": result.total_output_tokens,
        "output_tokens_per_s": result.output_throughput,
        "requests_per_s": result.request_throughput,
        "ttft_ms": _ms(result.ttft),
        "tpot_ms": _ms(result.tpot),
        "e2e_ms": _ms(result.e2e),
        "errors": result.error_counts(),
    }
    if include_records:
        d["records"] = [r.to_dict() for r in result.records]
    return d


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def result_table(result: BenchResult) -> Table:
    """Counts, throughput and TTFT / TPOT / e2e percentiles (ms) of one run."""
    cfg = result.config
    title = (
        f"{result.engine + ': ' if result.engine else ''}{result.model} · {cfg.endpoint.value}"
        f"{' stream' if cfg.stream else ''} · concurrency {cfg.concurrency} · "
        f"~{cfg.prompt_tokens} in / {cfg.output_tokens} out tokens"
    )
    summary = Table(title=title, show_header=False, title_justify="left", min_width=len(title))
    summary.add_column("metric", style="bold")
    summary.add_column("value", justify="right")
    summary.add_row("requests ok / failed", f"{len(result.ok)} / {len(result.failed)}")
    summary.add_row("duration (s)", _fmt(result.duration_s, 2))
    summary.add_row("output tokens", f"{result.total_output_tokens:,}")
    summary.add_row("output tok/s", _fmt(result.output_throughput))
    summary.add_row("requests/s", _fmt(result.request_throughput, 2))
    for name, s in (("TTFT", result.ttft), ("TPOT", result.tpot), ("e2e", result.e2e)):
        ms = s.scaled(MS) if s is not None else None
        summary.add_row(
            f"{name} p50 / p95 / p99 (ms)",
            " / ".join(_fmt(getattr(ms, p) if ms else None) for p in ("p50", "p95", "p99")),
        )
    return summary


def error_table(result: BenchResult, limit: int = 5) -> Table | None:
    """The most frequent error messages, or None when every request succeeded."""
    counts = result.error_counts()
    if not counts:
        return None
    table = Table(title="errors", title_justify="left")
    table.add_column("count", justify="right")
    table.add_column("error")
    for message, count in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]:
        table.add_row(str(count), message)
    return table


_COLD_START_ROWS = (
    ("spawned_s", "replica process created"),
    ("interpreter", "Python and CLI up"),
    ("fetch", "model files found (or pulled)"),
    ("imports", "torch + model code imported"),
    ("weights", "weights loaded"),
    ("kv_cache", "KV pool allocated"),
    ("warmup", "warm-up forward done"),
    ("app", "HTTP app built"),
    ("healthy_s", "/health answers"),
    ("first_token_s", "first token"),
)


def cold_start_table(report: ColdStartReport) -> Table:
    """Median seconds at the end of each step: direct from the spawn, via the gateway from the request."""
    floor = report.floor
    gateway = report.median(report.gateway, "first_token_s")
    ratio = f"{gateway / floor.total_s:.2f}x the floor" if gateway else "no gateway run"
    table = Table(
        title=f"Cold start of {report.model} (medians of {len(report.direct)} runs; seconds)",
        caption=f"floor {floor.total_s:.2f} s = imports {floor.import_s:.2f} s + reading "
        f"{floor.weight_bytes / 2**20:.1f} MiB of weights {floor.read_s:.3f} s; "
        f"first token via gateway: {ratio}{_preload_note(report)}{_standby_note(report)}",
    )
    table.add_column("step")
    table.add_column("direct (from spawn)", justify="right")
    table.add_column("via gateway (from request)", justify="right")
    for key, label in _COLD_START_ROWS:
        table.add_row(
            label,
            _fmt(report.median(report.direct, key), 2),
            _fmt(report.median(report.gateway, key), 2),
        )
    return table


def _preload_note(report: ColdStartReport) -> str:
    forked = [run.forked for run in report.gateway]
    if not any(forked):
        return " (replicas started as new Pythons)"
    rss = report.preload_rss_bytes
    held = f", which holds {rss / 2**20:.0f} MiB idle" if rss else ""
    return f" ({sum(map(bool, forked))} of {len(forked)} forked from the preloaded Python{held})"


def _standby_note(report: ColdStartReport) -> str:
    first = report.median(report.standby, "first_token_s")
    rss = report.median(report.standby, "rss_bytes")
    if first is None or rss is None:
        return ""
    return f"; with a warm standby: first token {first:.2f} s, the idle standby holds {rss / 2**20:.0f} MiB"
