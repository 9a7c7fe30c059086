"""PNG plots of benchmark results. Needs matplotlib (``pip install 'modelport[plot]'``)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.bench.comparison import ComparisonRow
from modelport.bench.result import BenchResult

MS = 1000.0


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("plotting needs matplotlib: pip install 'modelport[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _histogram(ax: Any, values: list[float], title: str, color: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("ms")
    ax.set_ylabel("requests")
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = min(values), max(values)
    # (nearly) equal samples: numpy cannot split a ~zero range into finite bins
    span = (lo - 0.5, hi + 0.5) if hi - lo < 1e-6 * max(1.0, abs(hi)) else None
    ax.hist(values, bins=min(30, max(5, len(values) // 2)), range=span, color=color, edgecolor="white")


def plot_result(result: BenchResult, path: Path) -> Path:
    """TTFT, TPOT and e2e histograms and a per-request timeline, as one PNG."""
    plt = pyplot()
    ok = result.ok
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    _histogram(
        axes[0][0], [r.ttft_s * MS for r in ok if r.ttft_s is not None], "time to first token", "tab:blue"
    )
    _histogram(
        axes[0][1], [t * MS for r in ok if (t := r.tpot_s) is not None], "time per output token", "tab:green"
    )
    _histogram(axes[1][0], [r.e2e_s * MS for r in ok], "end-to-end latency", "tab:purple")

    timeline = axes[1][1]
    timeline.set_title("per-request timeline (waiting for first token, then decoding)")
    timeline.set_xlabel("seconds since start")
    timeline.set_ylabel("request")
    for r in sorted(result.records, key=lambda rec: rec.start_s):
        if not r.ok:
            timeline.barh(r.index, r.e2e_s, left=r.start_s, color="tab:red", height=0.8)
            continue
        first = r.ttft_s if r.ttft_s is not None else 0.0
        timeline.barh(r.index, first, left=r.start_s, color="tab:orange", height=0.8)
        timeline.barh(r.index, r.e2e_s - first, left=r.start_s + first, color="tab:blue", height=0.8)
    timeline.invert_yaxis()

    cfg = result.config
    fig.suptitle(
        f"{result.model}: concurrency {cfg.concurrency}, {len(ok)}/{len(result.records)} ok, "
        f"{result.output_throughput:,.1f} output tok/s"
    )
    return _save(fig, path)


def plot_comparison(
    rows: Sequence[ComparisonRow], path: Path, title: str = "output tokens per second"
) -> Path:
    """Grouped bars: output tok/s per engine at each concurrency (missing rows leave a gap)."""
    plt = pyplot()
    engines = list(dict.fromkeys(r.engine for r in rows))
    concurrencies = sorted({r.concurrency for r in rows})
    width = 0.8 / max(len(engines), 1)
    fig, ax = plt.subplots(figsize=(max(7, 2 + 2 * len(concurrencies)), 5))
    for i, engine in enumerate(engines):
        xs, ys = [], []
        for j, c in enumerate(concurrencies):
            row = next((r for r in rows if r.engine == engine and r.concurrency == c), None)
            if row is not None and row.output_tok_s is not None:
                xs.append(j + (i - (len(engines) - 1) / 2) * width)
                ys.append(row.output_tok_s)
        bars = ax.bar(xs, ys, width=width, label=engine)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(concurrencies)), [str(c) for c in concurrencies])
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("output tok/s")
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_engines(
    rows: Sequence[ComparisonRow],
    cold_starts: Mapping[str, Mapping[str, float | None]],
    path: Path,
    title: str = "engines",
) -> Path:
    """Three panels: output tok/s against concurrency per engine; TTFT p50 (solid) and p95
    (hatched) per engine at each concurrency, log scale; and each engine's cold starts in
    seconds, one bar per kind of start (``cold_starts[engine][label]``; None leaves a gap)."""
    plt = pyplot()
    engines = list(dict.fromkeys(r.engine for r in rows))
    concurrencies = sorted({r.concurrency for r in rows})
    colors = {e: f"C{i}" for i, e in enumerate(engines)}
    fig, (tput, ttft, cold) = plt.subplots(1, 3, figsize=(17, 5.2))

    for engine in engines:
        pts = [
            (r.concurrency, r.output_tok_s)
            for r in sorted(rows, key=lambda r: r.concurrency)
            if r.engine == engine and r.output_tok_s is not None
        ]
        if pts:
            xs, ys = zip(*pts, strict=True)
            tput.plot(xs, ys, marker="o", color=colors[engine], label=engine)
            for x, y in pts:
                tput.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, 6), fontsize=8)
    tput.set_xscale("log", base=2)
    tput.set_xticks(concurrencies, [str(c) for c in concurrencies])
    tput.set_xlabel("concurrent requests")
    tput.set_ylabel("output tok/s")
    tput.set_ylim(bottom=0)
    tput.set_title("throughput")
    if tput.get_legend_handles_labels()[0]:
        tput.legend(fontsize=8)

    width = 0.8 / max(2 * len(engines), 1)
    for i, engine in enumerate(engines):
        for j, c in enumerate(concurrencies):
            row = next((r for r in rows if r.engine == engine and r.concurrency == c), None)
            if row is None or row.ttft_p50_ms is None:
                continue
            left = j + (2 * i - len(engines) + 0.5) * width
            ttft.bar(left, row.ttft_p50_ms, width, color=colors[engine], label=engine if j == 0 else None)
            if row.ttft_p95_ms is not None:
                ttft.bar(left + width, row.ttft_p95_ms, width, color=colors[engine], alpha=0.45, hatch="//")
    ttft.set_yscale("log")
    ttft.set_xticks(range(len(concurrencies)), [str(c) for c in concurrencies])
    ttft.set_xlabel("concurrent requests")
    ttft.set_ylabel("ms (log)")
    ttft.set_title("time to first token: p50 (solid), p95 (hatched)")
    if ttft.get_legend_handles_labels()[0]:
        ttft.legend(fontsize=8)

    labels = list(dict.fromkeys(label for starts in cold_starts.values() for label in starts))
    cold_engines = [e for e in engines if e in cold_starts] + [e for e in cold_starts if e not in engines]
    bar = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        where: list[float] = []
        seconds: list[float] = []
        for i, engine in enumerate(cold_engines):
            value = cold_starts[engine].get(label)
            if value is not None:
                where.append(i + (k - (len(labels) - 1) / 2) * bar)
                seconds.append(value)
        bars = cold.bar(where, seconds, bar, label=label, alpha=1.0 - 0.35 * k)
        cold.bar_label(bars, fmt="%.1f", fontsize=8)
    cold.set_xticks(range(len(cold_engines)), cold_engines)
    cold.set_ylabel("seconds, request at zero replicas → first token")
    cold.set_title("cold start through the gateway")
    if cold.get_legend_handles_labels()[0]:
        cold.legend(fontsize=8)

    fig.suptitle("\n".join(textwrap.wrap(title, 140)), fontsize=10)
    return _save(fig, path)


def _save(fig: Any, path: Path | str) -> Path:
    """Lay out, write (making the folder) and close a figure."""
    plt = pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
