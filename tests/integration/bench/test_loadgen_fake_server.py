"""The real load generator (and the `modelport bench serve` command) against a fake OpenAI server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.loadgen import BenchError, run_load
from modelport.bench.process import free_port
from modelport.bench.result import BenchResult, RequestRecord
from modelport.cli.main import app
from tests.integration.bench.fake_openai import FakeState, serve_fake


@pytest.fixture()
def fake() -> Iterator[tuple[str, FakeState]]:
    state = FakeState()
    with serve_fake(state) as url:
        yield url, state


def run(config: LoadConfig) -> BenchResult:
    return asyncio.run(run_load(config))


def test_streaming_completions_measures_ttft_tpot_and_respects_concurrency(
    fake: tuple[str, FakeState],
) -> None:
    url, state = fake
    done: list[RequestRecord] = []
    config = LoadConfig(url=url + "/v1", concurrency=3, num_requests=9, output_tokens=8, prompt_tokens=20)
    result = asyncio.run(run_load(config, on_done=done.append))
    assert result.model == "fake-model"
    assert len(result.ok) == 9 and not result.failed and len(done) == 9
    assert state.peak_in_flight == 3
    assert result.total_output_tokens == 72
    assert all(r.output_tokens == 8 for r in result.records)
    assert result.ttft is not None and result.tpot is not None and result.e2e is not None
    assert 0.04 <= result.ttft.p50 < 2.0  # generous upper bounds: CI machines are busy
    assert 0.008 <= result.tpot.p50 < 0.5
    assert result.e2e.p50 > result.ttft.p50
    # three waves of three requests, each at least 50 ms + 7 x 10 ms
    assert result.duration_s >= 3 * 0.12
    assert result.output_throughput == pytest.approx(72 / result.duration_s)
    body = state.bodies[0]
    assert body["ignore_eos"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 8 and len(body["prompt"].split()) == 20


def test_chat_without_v1_and_warmup(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    result = run(
        LoadConfig(url=url, endpoint=Endpoint.chat, concurrency=2, num_requests=4, warmup=2, output_tokens=4)
    )
    assert len(result.records) == 4 and len(result.ok) == 4
    assert len(state.bodies) == 6  # 2 warmup + 4 timed
    assert "messages" in state.bodies[-1]
    # the role-only first chunk is not a token: TTFT waits for the first content
    assert all(r.ttft_s is not None and r.ttft_s >= 0.04 for r in result.records)


def test_non_streaming(fake: tuple[str, FakeState]) -> None:
    url, _ = fake
    result = run(LoadConfig(url=url, stream=False, num_requests=3, concurrency=3, output_tokens=5))
    assert len(result.ok) == 3
    assert result.total_output_tokens == 15
    assert result.ttft is None and result.tpot is None
    assert result.e2e is not None and result.e2e.p50 >= 0.05


def test_without_usage_counts_chunks(fake: tuple[str, FakeState]) -> None:
    url, _ = fake
    result = run(LoadConfig(url=url, model="no-usage", num_requests=2, output_tokens=6))
    assert [r.output_tokens for r in result.records] == [6, 6]
    assert [r.tokens_from for r in result.records] == ["chunks", "chunks"]


def test_without_usage_a_stream_ended_at_max_tokens_has_that_many(fake: tuple[str, FakeState]) -> None:
    url, _ = fake
    # two tokens per chunk: counting chunks would say 3; finish_reason "length" says max_tokens
    result = run(LoadConfig(url=url, model="merged", num_requests=2, output_tokens=6))
    assert [(r.output_tokens, r.tokens_from, r.finish_reason) for r in result.records] == [
        (6, "length", "length")
    ] * 2
    unary = run(LoadConfig(url=url, model="no-usage", stream=False, num_requests=1, output_tokens=6))
    assert unary.records[0].output_tokens == 6


def test_failures_are_recorded_not_raised(fake: tuple[str, FakeState]) -> None:
    url, _ = fake
    broken = run(LoadConfig(url=url, model="broken", num_requests=2, concurrency=2))
    assert len(broken.failed) == 2
    assert broken.error_counts() == {'HTTP 500: {"error":{"message":"engine is broken"}}': 2}
    assert broken.output_throughput == 0.0
    mid = run(LoadConfig(url=url, model="stream-error", num_requests=1, output_tokens=5))
    assert mid.records[0].error == "stream error: died mid-stream"


def test_api_key(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    state.api_key = "sekrit"
    with pytest.raises(BenchError, match="401"):
        run(LoadConfig(url=url, num_requests=1))
    assert len(run(LoadConfig(url=url, num_requests=1, api_key="sekrit", output_tokens=2)).ok) == 1


def test_unreachable_server_raises_bench_error() -> None:
    with pytest.raises(BenchError, match="cannot reach"):
        run(LoadConfig(url=f"http://127.0.0.1:{free_port()}", num_requests=1))
    refused = run(LoadConfig(url=f"http://127.0.0.1:{free_port()}", model="m", num_requests=1))
    assert refused.records[0].error is not None and "ConnectError" in refused.records[0].error


def test_cli_json_and_plot(fake: tuple[str, FakeState], tmp_path: Path) -> None:
    url, _ = fake
    png = tmp_path / "bench.png"
    args = [
        "bench",
        "serve",
        "--url",
        url,
        "--concurrency",
        "2",
        "--num-requests",
        "4",
        "--output-tokens",
        "4",
    ]
    out = CliRunner().invoke(app, [*args, "--json", "--plot", str(png)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["requests_ok"] == 4 and data["total_output_tokens"] == 16
    assert data["ttft_ms"]["p50"] >= 40
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_table_and_exit_codes(fake: tuple[str, FakeState]) -> None:
    url, _ = fake
    runner = CliRunner()
    out = runner.invoke(app, ["bench", "serve", "--url", url, "--num-requests", "2", "--output-tokens", "3"])
    assert out.exit_code == 0, out.output
    assert "output tok/s" in out.stdout and "2 / 0" in out.stdout
    out = runner.invoke(app, ["bench", "serve", "--url", url, "--model", "broken", "--num-requests", "1"])
    assert out.exit_code == 1
    assert "engine is broken" in out.stdout
    out = runner.invoke(app, ["bench", "serve", "--url", f"http://127.0.0.1:{free_port()}"])
    assert out.exit_code == 2
