from __future__ import annotations

from pathlib import Path

import pytest

from modelport.bench.comparison import ComparisonRow
from modelport.bench.config import LoadConfig
from modelport.bench.result import BenchResult, RequestRecord

pytest.importorskip("matplotlib")

from modelport.bench.plot import plot_comparison, plot_engines, plot_result


def test_plot_result_streaming_and_unary(tmp_path: Path) -> None:
    records = [
        RequestRecord(index=i, start_s=0.1 * i, end_s=0.1 * i + 1.0, ttft_s=0.2, output_tokens=9)
        for i in range(6)
    ]
    records.append(RequestRecord(index=6, start_s=0.0, end_s=0.3, error="HTTP 500"))
    streamed = BenchResult(
        config=LoadConfig(url="http://x", concurrency=4), model="m", duration_s=1.6, records=records
    )
    assert plot_result(streamed, tmp_path / "a" / "s.png").read_bytes().startswith(b"\x89PNG")
    unary = BenchResult(
        config=LoadConfig(url="http://x", stream=False),
        model="m",
        duration_s=1.0,
        records=[RequestRecord(index=0, start_s=0.0, end_s=1.0, output_tokens=5)],
    )
    assert plot_result(unary, tmp_path / "u.png").exists()


def test_plot_comparison_with_gaps(tmp_path: Path) -> None:
    rows = [
        ComparisonRow("modelport", 1, output_tok_s=50.0),
        ComparisonRow("modelport", 8, output_tok_s=300.0),
        ComparisonRow("vllm", 1, note="skipped"),
        ComparisonRow("vllm", 8, output_tok_s=350.0),
    ]
    assert plot_comparison(rows, tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")


def test_plot_engines_with_gaps(tmp_path: Path) -> None:
    rows = [
        ComparisonRow("builtin", 1, output_tok_s=50.0, ttft_p50_ms=80.0, ttft_p95_ms=120.0),
        ComparisonRow("builtin", 8, output_tok_s=300.0, ttft_p50_ms=200.0, ttft_p95_ms=400.0),
        ComparisonRow("llamacpp", 1, output_tok_s=70.0, ttft_p50_ms=60.0),
        ComparisonRow("llamacpp", 8, note="failed"),
    ]
    cold = {
        "builtin": {"first": 9.5, "later (median)": 9.0},
        "llamacpp": {"first": 2.0, "later (median)": None},
    }
    assert plot_engines(rows, cold, tmp_path / "e.png").read_bytes().startswith(b"\x89PNG")
