"""Sampling parameters and the batched sampler.

`SamplingParams` is the engine's own request shape; the API layers convert their wire models
into it at the edge. The sampler processes a ``[B, V]`` float32 logits batch in this order:
logit bias → repetition/presence/frequency penalties → temperature → top-k → top-p → min-p,
then draws one token per row. Each row draws from its own ``torch.Generator`` so that a
request with a seed produces the same tokens whatever else is in the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


class InvalidSamplingParams(ValueError):
    """A sampling parameter is out of range; ``param`` names the offending field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


_FLOAT_FIELDS = (
    "temperature",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
)


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None  # number of top alternatives; 0 = only the chosen token's logprob
    logit_bias: dict[int, float] = field(default_factory=dict)
    min_tokens: int = 0
    include_stop_str_in_output: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5

    @property
    def needs_penalties(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def validate(self, vocab_size: int) -> None:
        def bad(msg: str, param: str) -> InvalidSamplingParams:
            return InvalidSamplingParams(msg, param)

        # NaN fails no comparison and would reach the sampler (NaN logits, then any token)
        for name in _FLOAT_FIELDS:
            if not math.isfinite(getattr(self, name)):
                raise bad(f"{name} must be a finite number", name)
        if not all(math.isfinite(b) for b in self.logit_bias.values()):
            raise bad("logit_bias values must be finite numbers", "logit_bias")
        if self.max_tokens < 1:
            raise bad(f"max_tokens must be at least 1, got {self.max_tokens}", "max_tokens")
        if not 0.0 <= self.temperature <= 2.0:
            raise bad(f"temperature must be between 0 and 2, got {self.temperature}", "temperature")
        if not 0.0 < self.top_p <= 1.0:
            raise bad(f"top_p must be in (0, 1], got {self.top_p}", "top_p")
        if self.top_k < 0:
            raise bad(f"top_k must be 0 (off) or positive, got {self.top_k}", "top_k")
        if not 0.0 <= self.min_p <= 1.0:
            raise bad(f"min_p must be between 0 and 1, got {self.min_p}", "min_p")
        if self.repetition_penalty <= 0.0:
            raise bad(
                f"repetition_penalty must be positive, got {self.repetition_penalty}", "repetition_penalty"
            )
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not -2.0 <= value <= 2.0:
                raise bad(f"{name} must be between -2 and 2, got {value}", name)
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise bad(f"top_logprobs must be between 0 and 20, got {self.logprobs}", "top_logprobs")
        if len(self.stop) > 16:
            raise bad("at most 16 stop sequences are allowed", "stop")
        if any(s == "" for s in self.stop):
            raise bad("stop sequences must not be empty", "stop")
        for tok in [*self.stop_token_ids, *self.logit_bias]:
            if not 0 <= tok < vocab_size:
                raise bad(f"token id {tok} is outside the vocabulary (size {vocab_size})", "logit_bias")
        for bias in self.logit_bias.values():
            if not -100.0 <= bias <= 100.0:
                raise bad(f"logit_bias values must be between -100 and 100, got {bias}", "logit_bias")


@dataclass
class SampleRow:
    """What the sampler needs to know about one sequence."""

    params: SamplingParams
    generator: torch.Generator | None
    prompt_ids: list[int]
    output_ids: list[int]
    suppress_ids: list[int]  # eos ids while min_tokens is not reached


@dataclass
class SampleResult:
    token_ids: list[int]
    logprobs: list[float] | None  # chosen token's logprob, per row (None when no row asked)
    top_logprobs: list[list[tuple[int, float]]] | None


def _apply_penalties(logits: torch.Tensor, rows: list[SampleRow]) -> None:
    vocab = logits.shape[1]
    for i, row in enumerate(rows):
        p = row.params
        if not p.needs_penalties:
            continue
        out = torch.tensor(row.output_ids, dtype=torch.long, device=logits.device)
        if p.repetition_penalty != 1.0:
            seen_ids = sorted(set(row.prompt_ids + row.output_ids))
            seen = torch.tensor(seen_ids, dtype=torch.long, device=logits.device)
            vals = logits[i, seen]
            logits[i, seen] = torch.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
        if out.numel() and (p.presence_penalty or p.frequency_penalty):
            counts = torch.bincount(out, minlength=vocab).to(logits.dtype)
            logits[i] -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)


def _filter(logits: torch.Tensor, rows: list[SampleRow]) -> torch.Tensor:
    """Temperature, top-k, top-p and min-p on the sampled rows; returns probabilities."""
    temps = torch.tensor([max(r.params.temperature, 1e-5) for r in rows], device=logits.device)
    logits = logits / temps[:, None]
    top_k = [r.params.top_k for r in rows]
    if any(k > 0 for k in top_k):
        for i, k in enumerate(top_k):
            if 0 < k < logits.shape[1]:
                kth = torch.topk(logits[i], k).values[-1]
                logits[i] = logits[i].masked_fill(logits[i] < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    top_p = torch.tensor([r.params.top_p for r in rows], device=logits.device)
    if bool((top_p < 1.0).any()):
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
        drop = (cum - sorted_p) > top_p[:, None]  # keep the smallest prefix whose mass reaches top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(1, idx, sorted_p)
    min_p = torch.tensor([r.params.min_p for r in rows], device=logits.device)
    if bool((min_p > 0).any()):
        cut = probs.max(dim=-1, keepdim=True).values * min_p[:, None]
        probs = probs.masked_fill(probs < cut, 0.0)
    return probs / probs.sum(dim=-1, keepdim=True)


def sample(logits: torch.Tensor, rows: list[SampleRow]) -> SampleResult:
    """Pick one token per row of ``logits`` ([B, V], any float dtype)."""
    logits = logits.float()
    raw_logprobs = (
        torch.log_softmax(logits, dim=-1) if any(r.params.logprobs is not None for r in rows) else None
    )
    for i, row in enumerate(rows):
        p = row.params
        if p.logit_bias:
            ids = torch.tensor(list(p.logit_bias), dtype=torch.long, device=logits.device)
            logits[i, ids] += torch.tensor(list(p.logit_bias.values()), device=logits.device)
        if row.suppress_ids:
            logits[i, row.suppress_ids] = float("-inf")
    if any(r.params.needs_penalties for r in rows):
        _apply_penalties(logits, rows)

    chosen = logits.argmax(dim=-1)
    random_rows = [i for i, r in enumerate(rows) if not r.params.greedy]
    if random_rows:
        idx = torch.tensor(random_rows, dtype=torch.long, device=logits.device)
        sub_rows = [rows[i] for i in random_rows]
        probs = _filter(logits.index_select(0, idx), sub_rows)
        cdf = probs.cumsum(dim=-1)
        u = torch.stack([torch.rand((), generator=r.generator, device="cpu") for r in sub_rows])
        u = u.to(logits.device) * cdf[:, -1]
        picked = torch.searchsorted(cdf, u[:, None]).squeeze(1).clamp_(max=probs.shape[1] - 1)
        chosen[idx] = picked
    token_ids = [int(t) for t in chosen.tolist()]

    if raw_logprobs is None:
        return SampleResult(token_ids, None, None)
    chosen_lp = raw_logprobs.gather(1, chosen[:, None]).squeeze(1).tolist()
    tops: list[list[tuple[int, float]]] = []
    for i, row in enumerate(rows):
        k = row.params.logprobs or 0
        if k > 0:
            vals, ids = raw_logprobs[i].topk(k)
            tops.append(list(zip(ids.tolist(), vals.tolist(), strict=True)))
        else:
            tops.append([])
    return SampleResult(token_ids, [float(x) for x in chosen_lp], tops)


def make_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
