"""One generated sequence: its tokens, KV blocks, incremental text and stop conditions."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from modelport.engine.sampling import SamplingParams


class SeqStatus(enum.Enum):
    WAITING = "waiting"  # not admitted, or preempted: holds no blocks
    RUNNING = "running"  # holds blocks; prefilling or decoding
    FINISHED = "finished"


class FinishReason(enum.StrEnum):
    STOP = "stop"  # eos, stop token or stop string
    LENGTH = "length"  # max_tokens or the context window
    ABORT = "abort"  # cancelled by the client or the server


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class SequenceOutput:
    """What one engine step produced for one sequence: a delta, plus totals."""

    request_id: str
    index: int
    token_ids: list[int]
    text: str
    logprobs: list[TokenLogprob] | None
    finish_reason: FinishReason | None
    stop_reason: str | int | None
    num_prompt_tokens: int
    num_output_tokens: int
    error: str | None = None


class IncrementalDetokenizer:
    """Turns token ids into text one at a time, never splitting a UTF-8 character."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        backend = getattr(tokenizer, "_tokenizer", None)
        self._backend = backend
        self._stream: Any = None
        if backend is not None:
            from tokenizers.decoders import DecodeStream

            self._stream = DecodeStream(skip_special_tokens=True)
        self._ids: list[int] = []
        self._text = ""

    def step(self, token_id: int) -> str:
        if self._stream is not None:
            return self._stream.step(self._backend, token_id) or ""
        # Slow tokenizers: decode everything and diff (quadratic, but only for exotic tokenizers).
        self._ids.append(token_id)
        text = str(self._tokenizer.decode(self._ids, skip_special_tokens=True))
        if text.endswith("\ufffd"):
            return ""
        delta, self._text = text[len(self._text) :], text
        return delta


@dataclass
class Sequence:
    request_id: str
    index: int
    prompt_ids: list[int]
    params: SamplingParams
    eos_ids: frozenset[int]
    max_model_len: int
    detokenizer: IncrementalDetokenizer
    generator: torch.Generator | None
    sink: Callable[[SequenceOutput], None]
    arrival: float = field(default_factory=time.monotonic)
    status: SeqStatus = SeqStatus.WAITING
    output_ids: list[int] = field(default_factory=list)
    block_table: list[int] = field(default_factory=list)
    num_cached: int = 0  # tokens whose K/V are in the pool
    text: str = ""
    emitted: int = 0  # characters of `text` already handed out
    finish_reason: FinishReason | None = None
    stop_reason: str | int | None = None
    first_token_at: float | None = None
    scheduled_at: float | None = None
    num_preemptions: int = 0

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    def token_slice(self, start: int, n: int) -> list[int]:
        """Tokens ``[start, start + n)`` of prompt + output, without concatenating the two each step."""
        cut = len(self.prompt_ids)
        if start >= cut:
            return self.output_ids[start - cut : start - cut + n]
        if start + n <= cut:
            return self.prompt_ids[start : start + n]
        return self.prompt_ids[start:] + self.output_ids[: start + n - cut]  # recompute after preemption

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def seq_key(self) -> tuple[str, int]:
        return (self.request_id, self.index)

    def append(self, token_id: int, logprob: TokenLogprob | None) -> SequenceOutput:
        """Add a sampled token, update text and stop state, and describe the delta."""
        self.output_ids.append(token_id)
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        p = self.params
        n_out = len(self.output_ids)
        if token_id in self.eos_ids and not p.ignore_eos:
            self.finish_reason = FinishReason.STOP
            self.stop_reason = None
        elif token_id in p.stop_token_ids:
            self.finish_reason, self.stop_reason = FinishReason.STOP, token_id
        else:
            self.text += self.detokenizer.step(token_id)
            self._check_stop_strings()
        if self.finish_reason is None and (n_out >= p.max_tokens or self.num_tokens >= self.max_model_len):
            self.finish_reason = FinishReason.LENGTH
        return self._delta([token_id], [logprob] if logprob is not None else None)

    def _check_stop_strings(self) -> None:
        if not self.params.stop:
            return
        longest = max(len(s) for s in self.params.stop)
        window_start = max(0, self.emitted - longest)
        best: tuple[int, str] | None = None
        for stop in self.params.stop:
            pos = self.text.find(stop, window_start)
            if pos != -1 and (best is None or pos < best[0]):
                best = (pos, stop)
        if best is not None:
            pos, stop = best
            self.text = (
                self.text[: pos + len(stop)] if self.params.include_stop_str_in_output else self.text[:pos]
            )
            self.finish_reason, self.stop_reason = FinishReason.STOP, stop

    def _delta(self, token_ids: list[int], logprobs: list[TokenLogprob] | None) -> SequenceOutput:
        if self.finish_reason is not None or not self.params.stop:
            upto = len(self.text)
        else:  # hold back a tail that could still become a stop string
            upto = max(self.emitted, len(self.text) - (max(len(s) for s in self.params.stop) - 1))
        delta = self.text[self.emitted : upto]
        self.emitted = upto
        return SequenceOutput(
            request_id=self.request_id,
            index=self.index,
            token_ids=token_ids,
            text=delta,
            logprobs=logprobs,
            finish_reason=self.finish_reason,
            stop_reason=self.stop_reason,
            num_prompt_tokens=len(self.prompt_ids),
            num_output_tokens=len(self.output_ids),
        )

    def finish(self, reason: FinishReason, error: str | None = None) -> SequenceOutput:
        self.finish_reason = reason
        out = self._delta([], None)
        out.error = error
        return out
