"""text-ranking (rerank): a cross-encoder (a sequence classifier with one output) scores each
(query, text) pair; the answer is `[{"index","score"(,"text")}]` best first, TEI's /rerank shape.

huggingface_hub 2.4's InferenceClient has no text-ranking method, so the request and answer
follow TEI's /rerank: `inputs` {"query": str, "texts": [str]}, parameters `raw_scores` (the
logit, not its sigmoid), `return_text`, `truncate` (cut a pair past the model's limit instead of
refusing it). `top_n` keeps the best n, as Cohere's /v1/rerank does. The server's /rerank and
/v1/rerank routes build their request with `rerank_request` and read the answer with `ranked`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.params import Rule, boolean, check_parameters, integer, one_of
from modelport.pipelines.runners.text_common import TextModel, check_chars, load_text_model, logits

MAX_TEXTS = 256


@dataclass(frozen=True)
class Ranked:
    index: int  # position in the request's texts
    score: float
    text: str | None = None


def rerank_request(
    query: str,
    texts: Sequence[str],
    *,
    raw_scores: bool = False,
    return_text: bool = False,
    truncate: bool = False,
    top_n: int | None = None,
) -> TaskRequest:
    """The text-ranking request a TEI /rerank or Cohere /v1/rerank body stands for."""
    parameters = {"raw_scores": raw_scores, "return_text": return_text, "truncate": truncate, "top_n": top_n}
    return TaskRequest(inputs={"query": query, "texts": list(texts)}, parameters=parameters)


def ranked(output: TaskOutput) -> list[Ranked]:
    """A text-ranking answer as typed values, best first."""
    return [Ranked(int(r["index"]), float(r["score"]), r.get("text")) for r in output.body]


def load(path: Path, options: LoadOptions) -> TaskRunner:
    tm = load_text_model(path, options, "AutoModelForSequenceClassification")
    if tm.model.config.num_labels != 1:
        raise ModelLoadError(
            "text-ranking needs a cross-encoder with one output score; "
            f"{path} has {tm.model.config.num_labels}"
        )
    return RerankRunner(tm)


def _read(inputs: Any) -> tuple[str, list[str]]:
    if (
        isinstance(inputs, dict)
        and set(inputs) == {"query", "texts"}
        and isinstance(inputs["query"], str)
        and isinstance(inputs["texts"], list)
        and 0 < len(inputs["texts"]) <= MAX_TEXTS
        and all(isinstance(t, str) for t in inputs["texts"])
    ):
        check_chars([inputs["query"], *inputs["texts"]])
        return inputs["query"], list(inputs["texts"])
    raise TaskInputError(f'`inputs` must be {{"query": string, "texts": [1 to {MAX_TEXTS} strings]}}')


@dataclass
class RerankRunner:
    tm: TextModel
    task: str = "text-ranking"
    accepts: frozenset[InputKind] = frozenset({"json"})

    def __post_init__(self) -> None:
        self.rules = {
            "raw_scores": Rule(boolean, False),
            "return_text": Rule(boolean, False),
            "truncate": Rule(boolean, False),
            "truncation_direction": Rule(
                one_of("right", "Right"), "right"
            ),  # TEI's default; left is not offered
            "top_n": Rule(integer(1, MAX_TEXTS)),
        }

    def prepare(self, request: TaskRequest) -> Prepared:
        query, texts = _read(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        lengths = self.tm.count([query] * len(texts), texts)
        if not params["truncate"]:
            self.tm.check_lengths(lengths, "shorten it or set `truncate` to true", "inputs.texts")
        lengths = [min(n, self.tm.max_tokens) for n in lengths]
        # every pair is cut at the limit in the forward, which changes only those a caller let be cut
        return Prepared((query, texts), params, key=None, size=max(lengths), input_tokens=sum(lengths))

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        queries = [item.payload[0] for item in items for _ in item.payload[1]]
        texts = [t for item in items for t in item.payload[1]]
        out = logits(self.tm, queries, texts, truncation=True, max_length=self.tm.max_tokens)[:, 0]
        results: list[TaskOutput | BaseException] = []
        at = 0
        for item in items:
            mine = out[at : at + len(item.payload[1])]
            at += len(mine)
            results.append(TaskOutput(self._body(item, mine), input_tokens=item.input_tokens))
        return results

    def _body(self, item: Prepared, scores: torch.Tensor) -> list[dict[str, Any]]:
        params = item.parameters
        if not params["raw_scores"]:
            scores = torch.sigmoid(scores)
        order = sorted(range(len(scores)), key=lambda i: float(scores[i]), reverse=True)[: params["top_n"]]
        texts = item.payload[1]
        return [
            {"index": i, "score": float(scores[i])} | ({"text": texts[i]} if params["return_text"] else {})
            for i in order
        ]

    def warmup(self) -> None:
        self.run_batch([self.prepare(rerank_request("warm", ["up"]))])
