"""Engine × concurrency comparison rows, throughput ratios and their tables (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from modelport.bench.result import BenchResult

MS = 1000.0


@dataclass(frozen=True)
class ComparisonRow:
    """One engine at one concurrency: its headline numbers, or why it has none."""

    engine: str
    concurrency: int
    output_tok_s: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    tpot_p50_ms: float | None = None
    e2e_p50_ms: float | None = None
    requests_ok: int = 0
    requests_failed: int = 0
    note: str | None = None
    """Why the row is empty (skipped / failed), or how it was measured."""

    @property
    def measured(self) -> bool:
        return self.output_tok_s is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_from_result(
    engine: str, concurrency: int, result: BenchResult, note: str | None = None
) -> ComparisonRow:
    ttft, tpot, e2e = result.ttft, result.tpot, result.e2e
    if not result.ok:
        first_error = next(iter(result.error_counts()), "no request succeeded")
        note = f"all requests failed: {first_error}"[:300]
    return ComparisonRow(
        engine=engine,
        concurrency=concurrency,
        output_tok_s=result.output_throughput if result.ok else None,
        ttft_p50_ms=ttft.p50 * MS if ttft else None,
        ttft_p95_ms=ttft.p95 * MS if ttft else None,
        tpot_p50_ms=tpot.p50 * MS if tpot else None,
        e2e_p50_ms=e2e.p50 * MS if e2e else None,
        requests_ok=len(result.ok),
        requests_failed=len(result.failed),
        note=note,
    )


def skipped_rows(engine: str, concurrencies: Sequence[int], reason: str) -> list[ComparisonRow]:
    return [ComparisonRow(engine=engine, concurrency=c, note=reason) for c in concurrencies]


def find_row(rows: Sequence[ComparisonRow], engine: str, concurrency: int) -> ComparisonRow | None:
    return next((r for r in rows if r.engine == engine and r.concurrency == concurrency), None)


def throughput_ratio(
    rows: Sequence[ComparisonRow], numerator: str, denominator: str, concurrency: int
) -> float | None:
    """Output tok/s of ``numerator`` over ``denominator``'s at one concurrency; None if either is missing."""
    num, den = find_row(rows, numerator, concurrency), find_row(rows, denominator, concurrency)
    if num is None or den is None or num.output_tok_s is None or not den.output_tok_s:
        return None
    return num.output_tok_s / den.output_tok_s


def ratio_table(
    rows: Sequence[ComparisonRow], subject: str, baselines: Sequence[str], concurrencies: Sequence[int]
) -> Table:
    """``subject``'s throughput divided by each baseline's, per concurrency."""
    table = Table(title=f"{subject} output tok/s ratios", title_justify="left")
    table.add_column("concurrency", justify="right")
    for base in baselines:
        table.add_column(f"{subject}/{base}", justify="right")
    for c in concurrencies:
        cells = []
        for base in baselines:
            ratio = throughput_ratio(rows, subject, base, c)
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        table.add_row(str(c), *cells)
    return table


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def comparison_table(rows: Sequence[ComparisonRow], title: str = "comparison") -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("engine", "left"),
        ("conc", "right"),
        ("output tok/s", "right"),
        ("TTFT p50 ms", "right"),
        ("TTFT p95 ms", "right"),
        ("TPOT p50 ms", "right"),
        ("e2e p50 ms", "right"),
        ("ok/failed", "right"),
        ("note", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            r.engine,
            str(r.concurrency),
            _fmt(r.output_tok_s),
            _fmt(r.ttft_p50_ms),
            _fmt(r.ttft_p95_ms),
            _fmt(r.tpot_p50_ms, 2),
            _fmt(r.e2e_p50_ms, 0),
            f"{r.requests_ok}/{r.requests_failed}",
            r.note or "",
        )
    return table
