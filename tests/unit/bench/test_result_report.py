from __future__ import annotations

import json

import pytest
from rich.console import Console

from modelport.bench.config import LoadConfig
from modelport.bench.report import error_table, result_table, result_to_dict
from modelport.bench.result import BenchResult, RequestRecord


def _result() -> BenchResult:
    records = [
        RequestRecord(index=0, start_s=0.0, end_s=1.0, ttft_s=0.1, output_tokens=10),
        RequestRecord(index=1, start_s=0.5, end_s=2.0, ttft_s=0.3, output_tokens=13),
        RequestRecord(index=2, start_s=1.0, end_s=1.2, error="HTTP 500: boom"),
    ]
    return BenchResult(
        config=LoadConfig(url="http://x", concurrency=2), model="m", duration_s=2.0, records=records
    )


def test_derived_metrics() -> None:
    r = _result()
    assert len(r.ok) == 2 and len(r.failed) == 1
    assert r.total_output_tokens == 23
    assert r.output_throughput == 11.5
    assert r.request_throughput == 1.0
    assert r.ttft is not None and r.ttft.p50 == pytest.approx(0.2)
    assert r.records[0].tpot_s == pytest.approx(0.1)
    assert r.records[1].tpot_s == pytest.approx(1.2 / 12)
    assert r.e2e is not None and r.e2e.max == pytest.approx(1.5)
    assert r.error_counts() == {"HTTP 500: boom": 1}


def test_result_dict_is_json_in_ms() -> None:
    d = json.loads(json.dumps(result_to_dict(_result())))
    assert d["requests_ok"] == 2 and d["requests_failed"] == 1
    assert d["ttft_ms"]["p50"] == pytest.approx(200.0)
    assert d["errors"] == {"HTTP 500: boom": 1}
    assert len(d["records"]) == 3 and d["records"][2]["tpot_s"] is None
    assert "records" not in result_to_dict(_result(), include_records=False)


def test_tables_render() -> None:
    console = Console(width=120, record=True)
    console.print(result_table(_result()))
    table = error_table(_result())
    assert table is not None
    console.print(table)
    text = console.export_text()
    assert "2 / 1" in text
    assert "200.0" in text  # TTFT p50 in ms
    assert "HTTP 500: boom" in text
    empty = BenchResult(config=LoadConfig(url="http://x"), model="m", duration_s=1.0, records=[])
    assert error_table(empty) is None
    console.print(result_table(empty))
