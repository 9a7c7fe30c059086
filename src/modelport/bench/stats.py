"""Pure statistics over latency samples: percentiles and summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as ``numpy.percentile(values, q)`` (method "linear"). Raises
    ValueError on an empty sequence or a ``q`` outside [0, 100].
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    frac = rank - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


@dataclass(frozen=True)
class Summary:
    """Distribution of one metric, in the unit of its samples."""

    count: int
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float

    def scaled(self, factor: float) -> Summary:
        """The same summary with every value multiplied (e.g. seconds to milliseconds)."""
        return Summary(
            count=self.count,
            mean=self.mean * factor,
            min=self.min * factor,
            max=self.max * factor,
            p50=self.p50 * factor,
            p95=self.p95 * factor,
            p99=self.p99 * factor,
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(values: Sequence[float]) -> Summary | None:
    """Count, mean, min, max and p50/p95/p99 of ``values``; None when there are none."""
    if not values:
        return None
    return Summary(
        count=len(values),
        mean=math.fsum(values) / len(values),
        min=min(values),
        max=max(values),
        p50=percentile(values, 50.0),
        p95=percentile(values, 95.0),
        p99=percentile(values, 99.0),
    )


def rate(count: float, seconds: float) -> float:
    """``count`` per second; 0 for a non-positive duration."""
    return count / seconds if seconds > 0 else 0.0


def time_per_output_token(e2e_s: float, ttft_s: float, output_tokens: int) -> float | None:
    """Mean time between output tokens after the first: (e2e - ttft) / (n - 1); None if n < 2."""
    if output_tokens < 2:
        return None
    return max(e2e_s - ttft_s, 0.0) / (output_tokens - 1)
