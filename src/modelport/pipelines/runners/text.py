"""Text tasks on encoder models: the `load` every text task goes through (registry.py maps them
all here), text-classification and zero-shot-classification (both a sequence classifier's logits).

Answers take the shapes huggingface_hub 2.4's InferenceClient parses:
- text_classification: `parse_obj_as_list(body)[0]`, so one text answers `[[{"label","score"}...]]`
  (a list per text, sorted by score); a list of texts answers one such list per text.
- zero_shot_classification: `parse_obj_as_list(body)`, so `[{"label","score"}...]` sorted by score
  (not the pipeline's `{"sequence","labels","scores"}`, which that client cannot parse).
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
from modelport.pipelines.params import Rule, boolean, check_parameters, integer, one_of, text, text_list
from modelport.pipelines.runners.text_common import (
    TextModel,
    check_chars,
    load_text_model,
    logits,
    read_each,
    read_texts,
)

TEXT: frozenset[InputKind] = frozenset({"text", "json"})
MAX_LABELS = 32
DEFAULT_TEMPLATE = "This example is {}."


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    if task == "text-classification":
        return TextClassificationRunner(load_text_model(path, options, "AutoModelForSequenceClassification"))
    if task == "zero-shot-classification":
        return ZeroShotRunner(load_text_model(path, options, "AutoModelForSequenceClassification"))
    if task in ("token-classification", "fill-mask"):
        from modelport.pipelines.runners import tokens

        return tokens.load(path, task, options)
    if task == "question-answering":
        from modelport.pipelines.runners import qa

        return qa.load(path, options)
    if task == "text-ranking":
        from modelport.pipelines.runners import rerank

        return rerank.load(path, options)
    if task == "table-question-answering":
        raise ModelLoadError("table-question-answering is not served by modelport: its models need pandas")
    raise ModelLoadError(f"{task!r} is not a text task")


def _flatten(items: Sequence[Prepared]) -> tuple[list[Any], list[range]]:
    """Every item's rows in one list, and which rows are whose."""
    rows: list[Any] = []
    spans = []
    for item in items:
        spans.append(range(len(rows), len(rows) + len(item.payload)))
        rows.extend(item.payload)
    return rows, spans


def _ranked(labels: Sequence[str], scores: Sequence[float], top_k: int | None = None) -> list[dict[str, Any]]:
    order = sorted(range(len(labels)), key=lambda i: scores[i], reverse=True)[:top_k]
    return [{"label": labels[i], "score": float(scores[i])} for i in order]


# -- text-classification ------------------------------------------------------------------------


def _read_pairs(inputs: Any) -> tuple[list[tuple[str, str | None]], bool]:
    """`inputs`: a text, {"text", "text_pair"} (NLI-style pairs), or a list of one of those kinds."""

    def pair(value: Any) -> tuple[str, str | None] | None:
        if isinstance(value, str):
            return value, None
        if (
            isinstance(value, dict)
            and isinstance(value.get("text"), str)
            and set(value) <= {"text", "text_pair"}
        ):
            second = value.get("text_pair")
            if second is None or isinstance(second, str):
                return value["text"], second
        return None

    pairs, many = read_each(inputs, pair, 'a string, {"text": ..., "text_pair": ...},')
    if len({p[1] is None for p in pairs}) > 1:
        raise TaskInputError("`inputs` mixes single texts and text pairs; send one kind per request")
    check_chars([t for p in pairs for t in p if t is not None])
    return pairs, many


@dataclass
class TextClassificationRunner:
    tm: TextModel
    task: str = "text-classification"
    accepts: frozenset[InputKind] = TEXT

    def __post_init__(self) -> None:
        config = self.tm.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.rules = {
            "top_k": Rule(integer(1, 1000)),
            "function_to_apply": Rule(one_of("sigmoid", "softmax", "none"), _default_function(config)),
        }

    def prepare(self, request: TaskRequest) -> Prepared:
        pairs, many = _read_pairs(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        has_pair = pairs[0][1] is not None
        lengths = self.tm.count([p[0] for p in pairs], [p[1] or "" for p in pairs] if has_pair else None)
        self.tm.check_lengths(lengths)
        # top_k and the score function only shape the answer: any mix shares a forward
        return Prepared(pairs, params, key=has_pair, size=max(lengths), input_tokens=sum(lengths), many=many)

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        rows, spans = _flatten(items)
        has_pair = rows[0][1] is not None
        out = logits(self.tm, [r[0] for r in rows], [r[1] for r in rows] if has_pair else None)
        answers: list[TaskOutput | BaseException] = []
        for item, span in zip(items, spans, strict=True):
            scores = _apply(item.parameters["function_to_apply"], out[span.start : span.stop])
            body = [_ranked(self.labels, s.tolist(), item.parameters["top_k"]) for s in scores]
            answers.append(TaskOutput(body, input_tokens=item.input_tokens))
        return answers

    def warmup(self) -> None:
        logits(self.tm, ["warm up"], None)


def _default_function(config: Any) -> str:
    """What transformers' text-classification pipeline applies when the caller does not say."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    if config.problem_type == "single_label_classification" or config.num_labels > 1:
        return "softmax"
    return str(getattr(config, "function_to_apply", None) or "none")


def _apply(function: str, rows: torch.Tensor) -> torch.Tensor:
    if function == "sigmoid":
        return torch.sigmoid(rows)
    if function == "softmax":
        return torch.softmax(rows, dim=-1)
    return rows


# -- zero-shot-classification -------------------------------------------------------------------


def _template(param: str, value: Any) -> str:
    template: str = text(1000)(param, value)
    try:
        filled = template.format("x")
    except (IndexError, KeyError, ValueError) as exc:
        raise TaskInputError(
            f"`{param}` must contain one {{}} where the label goes ({exc})", param=param
        ) from exc
    if filled == template:
        raise TaskInputError(f"`{param}` must contain {{}} where the label goes", param=param)
    return template


@dataclass
class ZeroShotRunner:
    """Each (text, template filled with a label) pair through an NLI model; entailment ranks."""

    tm: TextModel
    task: str = "zero-shot-classification"
    accepts: frozenset[InputKind] = TEXT

    def __post_init__(self) -> None:
        label2id = {str(k).lower(): int(v) for k, v in self.tm.model.config.label2id.items()}
        entail = [i for name, i in label2id.items() if name.startswith("entail")]
        if not entail:
            raise ModelLoadError(
                "zero-shot-classification needs an NLI model with an 'entailment' label in its config"
            )
        self.entailment = entail[0]
        contra = [i for name, i in label2id.items() if name.startswith("contradict")]
        # transformers' pipeline takes contradiction to be the first or the last label
        self.contradiction = contra[0] if contra else (-1 if self.entailment == 0 else 0)
        self.rules = {
            "candidate_labels": Rule(text_list(MAX_LABELS, 200)),
            "multi_label": Rule(boolean, False),
            "hypothesis_template": Rule(_template, DEFAULT_TEMPLATE),
        }

    def prepare(self, request: TaskRequest) -> Prepared:
        texts, many = read_texts(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        labels = params["candidate_labels"]
        if labels is None:
            raise TaskInputError(
                "`parameters.candidate_labels` is required: the labels to choose from",
                param="parameters.candidate_labels",
            )
        hypotheses = [params["hypothesis_template"].format(label) for label in labels]
        alone = self.tm.count(hypotheses)
        if max(alone) + 1 >= self.tm.max_tokens:
            raise TaskInputError(
                f"a hypothesis is {max(alone)} tokens long, "
                f"too long for this model's limit of {self.tm.max_tokens} tokens",
                param="parameters.candidate_labels",
            )
        pairs = [(t, h) for t in texts for h in hypotheses]
        lengths = [
            min(n, self.tm.max_tokens) for n in self.tm.count([p[0] for p in pairs], [p[1] for p in pairs])
        ]
        return Prepared(pairs, params, key=None, size=max(lengths), input_tokens=sum(lengths), many=many)

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        rows, spans = _flatten(items)
        # the text is cut, never the hypothesis, as transformers' pipeline does
        out = logits(
            self.tm,
            [r[0] for r in rows],
            [r[1] for r in rows],
            truncation="only_first",
            max_length=self.tm.max_tokens,
        )
        answers: list[TaskOutput | BaseException] = []
        for item, span in zip(items, spans, strict=True):
            labels = item.parameters["candidate_labels"]
            per_text = out[span.start : span.stop].reshape(-1, len(labels), out.shape[-1])
            body = [
                _ranked(labels, self._scores(x, item.parameters["multi_label"]).tolist()) for x in per_text
            ]
            answers.append(TaskOutput(body if item.many else body[0], input_tokens=item.input_tokens))
        return answers

    def _scores(self, x: torch.Tensor, multi_label: bool) -> torch.Tensor:
        if multi_label or x.shape[0] == 1:  # each label alone: entailment against contradiction
            return torch.softmax(x[:, [self.contradiction, self.entailment]], dim=-1)[:, 1]
        return torch.softmax(x[:, self.entailment], dim=0)

    def warmup(self) -> None:
        logits(self.tm, ["warm up"], [DEFAULT_TEMPLATE.format("test")])
