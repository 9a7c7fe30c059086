from __future__ import annotations

import pytest
from rich.console import Console

from modelport.bench.comparison import (
    ComparisonRow,
    comparison_table,
    ratio_table,
    row_from_result,
    skipped_rows,
    throughput_ratio,
)
from modelport.bench.config import LoadConfig
from modelport.bench.result import BenchResult, RequestRecord


def test_row_from_result_and_failures() -> None:
    ok = BenchResult(
        config=LoadConfig(url="http://x"),
        model="m",
        duration_s=2.0,
        records=[RequestRecord(index=0, start_s=0, end_s=2.0, ttft_s=0.5, output_tokens=16)],
    )
    row = row_from_result("e", 1, ok)
    assert row.output_tok_s == 8.0 and row.ttft_p50_ms == 500.0 and row.tpot_p50_ms == pytest.approx(100.0)
    failed = BenchResult(
        config=LoadConfig(url="http://x"),
        model="m",
        duration_s=1.0,
        records=[RequestRecord(index=0, start_s=0, end_s=1, error="HTTP 404: nope")],
    )
    row = row_from_result("e", 1, failed)
    assert row.output_tok_s is None and not row.measured
    assert row.note is not None and "HTTP 404" in row.note


def test_ratios() -> None:
    rows = [
        ComparisonRow("modelport", 1, output_tok_s=50.0),
        ComparisonRow("modelport", 8, output_tok_s=300.0),
        ComparisonRow("sequential", 1, output_tok_s=25.0),
        ComparisonRow("sequential", 8, output_tok_s=25.0),
        *skipped_rows("vllm", [1, 8], "not installed"),
    ]
    assert throughput_ratio(rows, "modelport", "sequential", 8) == 12.0
    assert throughput_ratio(rows, "modelport", "vllm", 8) is None
    assert throughput_ratio(rows, "modelport", "nothing", 1) is None
    console = Console(width=160, record=True)
    console.print(comparison_table(rows))
    console.print(ratio_table(rows, "modelport", ["sequential", "vllm"], [1, 8]))
    text = console.export_text()
    assert "12.00x" in text and "2.00x" in text and "not installed" in text
