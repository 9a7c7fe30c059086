"""question-answering on AutoModelForQuestionAnswering (transformers 5 dropped that pipeline).

A context longer than `max_seq_len` is read in overlapping windows (`doc_stride` tokens shared);
each window's start and end logits become probabilities over the context's tokens (softmax of
each, as transformers 4's pipeline did), a span scores start x end, and the best spans of all
windows are answered. `handle_impossible_answer` adds the empty answer, scored by the first
token (CLS) as both start and end, the lowest of all windows.

Answer shape, as huggingface_hub 2.4's InferenceClient.question_answering parses it
(`QuestionAnsweringOutputElement.parse_obj`): `{"answer","score","start","end"}` when top_k is 1,
a list of those best first otherwise; a list of questions answers a list of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.params import Rule, boolean, check_parameters, integer
from modelport.pipelines.runners.text_common import (
    TextModel,
    check_chars,
    chunks,
    load_text_model,
    read_each,
)

MAX_WINDOWS = 32  # windows of one context: a longer one is refused, not read for minutes
Span = tuple[int, int]


@dataclass(frozen=True)
class Window:
    """One model input: the question and a window of the context, with where tokens came from."""

    inputs: dict[str, list[int]]
    allowed: list[bool]  # may start or end an answer: a context token of this window
    token_chars: list[Span]  # each context token's characters
    word_chars: list[Span]  # the characters of the word each context token belongs to


@dataclass(frozen=True)
class Question:
    context: str
    windows: list[Window]


def load(path: Path, options: LoadOptions) -> TaskRunner:
    return QuestionAnsweringRunner(
        load_text_model(path, options, "AutoModelForQuestionAnswering", need_fast=True)
    )


def _read(inputs: Any) -> tuple[list[tuple[str, str]], bool]:
    def one(value: Any) -> tuple[str, str] | None:
        if isinstance(value, dict) and set(value) == {"question", "context"}:
            q, c = value["question"], value["context"]
            if isinstance(q, str) and isinstance(c, str) and q.strip() and c.strip():
                return q, c
        return None

    pairs, many = read_each(inputs, one, '{"question": non-empty string, "context": non-empty string}')
    check_chars([t for p in pairs for t in p])
    return pairs, many


@dataclass
class QuestionAnsweringRunner:
    tm: TextModel
    task: str = "question-answering"
    accepts: frozenset[InputKind] = frozenset({"json"})

    def __post_init__(self) -> None:
        limit = self.tm.max_tokens
        self.question_first = self.tm.tokenizer.padding_side == "right"
        self.rules = {
            "top_k": Rule(integer(1, 20), 1),
            "max_answer_len": Rule(integer(1, limit), 15),
            "handle_impossible_answer": Rule(boolean, False),
            "doc_stride": Rule(integer(0, limit), 128),
            "max_seq_len": Rule(integer(8, limit), min(384, limit)),
            "max_question_len": Rule(integer(1, limit), 64),
            "align_to_words": Rule(boolean, True),
        }

    def prepare(self, request: TaskRequest) -> Prepared:
        pairs, many = _read(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        with self.tm.lock:
            questions = [self._windows(q, c, params) for q, c in pairs]
        tokens = sum(len(w.inputs["input_ids"]) for q in questions for w in q.windows)
        size = max(len(q.windows[0].inputs["input_ids"]) for q in questions)
        # spans are chosen per item after one shared forward: no parameter splits a batch
        return Prepared(questions, params, key=None, size=size, input_tokens=tokens, many=many)

    def _windows(self, question: str, context: str, params: dict[str, Any]) -> Question:
        tok = self.tm.counter
        q_offsets = tok(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(q_offsets) > params["max_question_len"]:  # cut the question, as the parameter says
            question = question[: q_offsets[params["max_question_len"] - 1][1]]
            q_offsets = q_offsets[: params["max_question_len"]]
        room = params["max_seq_len"] - len(q_offsets) - tok.num_special_tokens_to_add(pair=True)
        if room < 2:
            raise TaskInputError(
                f"the question takes {len(q_offsets)} of the {params['max_seq_len']} tokens of a window "
                "(`max_seq_len`), leaving no room for the context",
                param="parameters.max_seq_len",
            )
        first, second = (question, context) if self.question_first else (context, question)
        enc = tok(
            first,
            second,
            truncation="only_second" if self.question_first else "only_first",
            max_length=params["max_seq_len"],
            stride=min(params["doc_stride"], room // 2),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        if len(enc["input_ids"]) > MAX_WINDOWS:
            raise TaskInputError(
                f"the context needs {len(enc['input_ids'])} windows of {params['max_seq_len']} tokens, "
                f"over the limit of {MAX_WINDOWS}; shorten it or raise `max_seq_len`",
                status=413,
            )
        seq = 1 if self.question_first else 0
        windows = []
        for i in range(len(enc["input_ids"])):
            ctx = [s == seq for s in enc.sequence_ids(i)]
            offsets = [tuple(o) for o in enc["offset_mapping"][i]]
            words = [
                _word_chars(enc, i, w, seq) if is_ctx and w is not None else offsets[t]
                for t, (w, is_ctx) in enumerate(zip(enc.word_ids(i), ctx, strict=True))
            ]
            model_inputs = {
                k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc
            }
            windows.append(Window(model_inputs, ctx, offsets, words))  # type: ignore[arg-type]
        return Question(context, windows)

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        windows = [w for item in items for q in item.payload for w in q.windows]
        starts, ends = self._logits(windows)
        results: list[TaskOutput | BaseException] = []
        at = 0
        for item in items:
            bodies = []
            for q in item.payload:
                n = len(q.windows)
                bodies.append(_answers(q, starts[at : at + n], ends[at : at + n], item.parameters))
                at += n
            results.append(TaskOutput(bodies if item.many else bodies[0], input_tokens=item.input_tokens))
        return results

    def _logits(self, windows: Sequence[Window]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        starts: list[torch.Tensor] = []
        ends: list[torch.Tensor] = []
        pad = self.tm.tokenizer.pad_token_id or 0
        for rows in chunks(len(windows), self.tm.max_batch):
            part = [windows[i] for i in rows]
            width = max(len(w.inputs["input_ids"]) for w in part)
            batch = {
                name: torch.tensor(
                    [
                        w.inputs[name] + [pad if name == "input_ids" else 0] * (width - len(w.inputs[name]))
                        for w in part
                    ]
                ).to(self.tm.device)
                for name in part[0].inputs
            }
            with torch.inference_mode():
                out = self.tm.model(**batch)
            for w, s, e in zip(
                part, out.start_logits.float().cpu(), out.end_logits.float().cpu(), strict=True
            ):
                n = len(w.inputs["input_ids"])
                starts.append(s[:n])
                ends.append(e[:n])
        return starts, ends

    def warmup(self) -> None:
        q = self.prepare(TaskRequest(inputs={"question": "warm up?", "context": "warm up"}))
        self.run_batch([q])


def _word_chars(enc: Any, i: int, word: int, seq: int) -> Span:
    span = enc.word_to_chars(i, word, sequence_index=seq)
    return (span.start, span.end)


def _answers(q: Question, starts: Sequence[torch.Tensor], ends: Sequence[torch.Tensor], params: Any) -> Any:
    top_k, longest = params["top_k"], params["max_answer_len"]
    found: list[dict[str, Any]] = []
    null = 1.0
    for window, start, end in zip(q.windows, starts, ends, strict=True):
        allowed = torch.tensor(window.allowed)
        allowed[0] = True  # the first token (CLS) stands for "no answer"
        p_start = torch.softmax(start.masked_fill(~allowed, -10000.0), dim=-1)
        p_end = torch.softmax(end.masked_fill(~allowed, -10000.0), dim=-1)
        null = min(null, float(p_start[0] * p_end[0]))
        context = torch.tensor(window.allowed)
        scores = p_start[:, None] * p_end[None, :]
        n = scores.shape[0]
        rows, cols = torch.arange(n)[:, None], torch.arange(n)[None, :]
        valid = (cols >= rows) & (cols - rows < longest) & context[:, None] & context[None, :]
        scores = scores.masked_fill(~valid, -1.0).flatten()
        best = scores.topk(min(top_k, int(valid.sum()))) if bool(valid.any()) else None
        if best is None:
            continue
        chars = window.word_chars if params["align_to_words"] else window.token_chars
        for score, flat in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            s, e = divmod(flat, n)
            first, last = chars[s][0], chars[e][1]
            found.append({"answer": q.context[first:last], "score": score, "start": first, "end": last})
    if params["handle_impossible_answer"]:
        found.append({"answer": "", "score": null, "start": 0, "end": 0})
    found.sort(key=lambda a: a["score"], reverse=True)
    found = found[:top_k] or [{"answer": "", "score": 0.0, "start": 0, "end": 0}]  # nothing to read
    return found[0] if top_k == 1 else found
