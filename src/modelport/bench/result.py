"""Measurements of a load run: one :class:`RequestRecord` per request, gathered in :class:`BenchResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from modelport.bench.config import LoadConfig
from modelport.bench.stats import Summary, rate, summarize, time_per_output_token


@dataclass(frozen=True)
class RequestRecord:
    """One request. Times are seconds since the timed run started."""

    index: int
    start_s: float
    end_s: float
    ttft_s: float | None = None
    """Time from sending to the first non-empty content chunk (streaming only)."""
    output_tokens: int = 0
    """How many, and where the count came from: see ``tokens_from``."""
    prompt_tokens: int | None = None
    error: str | None = None
    finish_reason: str | None = None
    """Why the server ended the stream (``length``, ``stop``), when it said."""
    tokens_from: str | None = None
    """``usage`` (the response's), ``length`` (no usage, but the stream ended at ``max_tokens``:
    exactly that many) or ``chunks`` (the number of content chunks: a lower bound when a server
    merges tokens into one chunk)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def e2e_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None:
            return None
        return time_per_output_token(self.e2e_s, self.ttft_s, self.output_tokens)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["e2e_s"] = self.e2e_s
        d["tpot_s"] = self.tpot_s
        return d


@dataclass(frozen=True)
class BenchResult:
    """A finished load run and its derived metrics (latencies in seconds)."""

    config: LoadConfig
    model: str
    duration_s: float
    """From the first request's start to the last request's end."""
    records: list[RequestRecord] = field(default_factory=list)
    engine: str | None = None
    """Free-form label of what was measured (set by comparisons)."""

    @property
    def ok(self) -> list[RequestRecord]:
        return [r for r in self.records if r.ok]

    @property
    def failed(self) -> list[RequestRecord]:
        return [r for r in self.records if not r.ok]

    @property
    def total_output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.ok)

    @property
    def output_throughput(self) -> float:
        """Output tokens per second over the whole run (successful requests)."""
        return rate(self.total_output_tokens, self.duration_s)

    @property
    def request_throughput(self) -> float:
        return rate(len(self.ok), self.duration_s)

    @property
    def ttft(self) -> Summary | None:
        return summarize([r.ttft_s for r in self.ok if r.ttft_s is not None])

    @property
    def tpot(self) -> Summary | None:
        return summarize([t for r in self.ok if (t := r.tpot_s) is not None])

    @property
    def e2e(self) -> Summary | None:
        return summarize([r.e2e_s for r in self.ok])

    def error_counts(self) -> dict[str, int]:
        """How often each distinct error message occurred."""
        counts: dict[str, int] = {}
        for r in self.failed:
            key = r.error or "unknown error"
            counts[key] = counts.get(key, 0) + 1
        return counts
