from __future__ import annotations

import numpy as np
import pytest

from modelport.bench.stats import percentile, rate, summarize, time_per_output_token


@pytest.mark.parametrize(
    "values",
    [[1.0], [3.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1 * i * i for i in range(37)], [2.0, 2.0, 2.0, 9.0]],
)
@pytest.mark.parametrize("q", [0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 100.0])
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_does_not_reorder_input() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    for q in (-1.0, 100.5, float("nan")):
        with pytest.raises(ValueError, match="percentile"):
            percentile([1.0], q)


def test_summarize() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s is not None
    assert (s.count, s.mean, s.min, s.max, s.p50) == (4, 2.5, 1.0, 4.0, 2.5)
    assert s.p95 == pytest.approx(3.85)
    assert s.p99 == pytest.approx(3.97)
    ms = s.scaled(1000)
    assert (ms.count, ms.mean, ms.p50) == (4, 2500.0, 2500.0)
    assert summarize([]) is None


def test_rate_and_tpot() -> None:
    assert rate(100, 4.0) == 25.0
    assert rate(100, 0.0) == 0.0
    assert time_per_output_token(e2e_s=1.1, ttft_s=0.1, output_tokens=11) == pytest.approx(0.1)
    assert time_per_output_token(e2e_s=1.0, ttft_s=0.1, output_tokens=1) is None
    assert time_per_output_token(e2e_s=0.1, ttft_s=0.2, output_tokens=3) == 0.0
