"""Per-token text tasks: fill-mask (a masked LM's guesses) and token-classification (NER).

Answers as huggingface_hub 2.4's InferenceClient parses them:
- fill_mask: `FillMaskOutputElement.parse_obj_as_list(body)`: `[{"score","token","token_str","sequence"}]`
  best first (a text with several masks answers one such list per mask, as transformers does).
- token_classification: `TokenClassificationOutputElement.parse_obj_as_list(body)`:
  `[{"entity_group" (or "entity" and "index" without aggregation),"score","word","start","end"}]`.
A list of texts answers a list of those.
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
from modelport.pipelines.params import Rule, check_parameters, integer, one_of, text_list
from modelport.pipelines.runners.text_common import TextModel, chunks, load_text_model, read_texts

TEXT: frozenset[InputKind] = frozenset({"text", "json"})
AGGREGATIONS = ("none", "simple", "first", "average", "max")


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    if task == "fill-mask":
        tm = load_text_model(path, options, "AutoModelForMaskedLM")
        if tm.tokenizer.mask_token_id is None:
            raise ModelLoadError(f"{path}: the tokenizer defines no mask token, which fill-mask needs")
        return FillMaskRunner(tm)
    if task == "token-classification":
        return TokenClassificationRunner(
            load_text_model(path, options, "AutoModelForTokenClassification", need_fast=True)
        )
    raise ModelLoadError(f"{task!r} is not a token-level text task")


# -- fill-mask ----------------------------------------------------------------------------------


@dataclass
class FillMaskRunner:
    tm: TextModel
    task: str = "fill-mask"
    accepts: frozenset[InputKind] = TEXT

    def __post_init__(self) -> None:
        self.mask_id: int = self.tm.tokenizer.mask_token_id
        self.rules = {"top_k": Rule(integer(1, 100), 5), "targets": Rule(text_list(100, 100))}

    def prepare(self, request: TaskRequest) -> Prepared:
        texts, many = read_texts(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        with self.tm.lock:
            ids = self.tm.counter(texts, truncation=False)["input_ids"]
            if params["targets"] is not None:
                params["targets"] = self._target_ids(params["targets"])
        lengths = [len(row) for row in ids]
        self.tm.check_lengths(lengths)
        mask = self.tm.tokenizer.mask_token
        for i, row in enumerate(ids):
            if self.mask_id not in row:
                where = "`inputs`" if not many else f"`inputs`[{i}]"
                raise TaskInputError(f"{where} has no mask token: put {mask} where the word to guess goes")
        return Prepared(texts, params, key=None, size=max(lengths), input_tokens=sum(lengths), many=many)

    def _target_ids(self, targets: list[str]) -> list[int]:
        """A target outside the vocabulary stands for its first token, as transformers does."""
        vocab = self.tm.counter.get_vocab()
        found = []
        for target in targets:
            if target in vocab:
                found.append(vocab[target])
                continue
            pieces = self.tm.counter(target, add_special_tokens=False)["input_ids"]
            if pieces:
                found.append(pieces[0])
        if not found:
            raise TaskInputError(
                "`parameters.targets` has no word this model knows", param="parameters.targets"
            )
        return sorted(set(found))

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        texts = [t for item in items for t in item.payload]
        answers_per_text: list[Any] = []
        for rows in chunks(len(texts), self.tm.max_batch):
            enc = self.tm.encode([texts[i] for i in rows])
            with torch.inference_mode():
                out = self.tm.model(**enc).logits.float().cpu()
            answers_per_text.extend(zip(enc["input_ids"].cpu(), out, strict=True))
        results: list[TaskOutput | BaseException] = []
        at = 0
        for item in items:
            mine = answers_per_text[at : at + len(item.payload)]
            at += len(item.payload)
            body = [self._guesses(ids, row, item.parameters) for ids, row in mine]
            results.append(TaskOutput(body if item.many else body[0], input_tokens=item.input_tokens))
        return results

    def _guesses(self, ids: torch.Tensor, out: torch.Tensor, params: dict[str, Any] | Any) -> list[Any]:
        tokenizer = self.tm.tokenizer
        ids = ids[ids != tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else ids
        where = torch.nonzero(ids == self.mask_id).squeeze(-1)
        probs = out[where].softmax(dim=-1)
        targets = params["targets"]
        if targets is not None:
            probs = probs[:, targets]
        values, picks = probs.topk(min(params["top_k"], probs.shape[-1]))
        single = len(where) == 1
        per_mask = []
        for m, (scores, tokens) in enumerate(zip(values.tolist(), picks.tolist(), strict=True)):
            row = []
            for score, pick in zip(scores, tokens, strict=True):
                token = targets[pick] if targets is not None else pick
                filled = ids.clone()
                filled[where[m]] = token
                # with several masks the others stay visible, so special tokens are kept
                sequence = tokenizer.decode(filled.tolist(), skip_special_tokens=single)
                row.append(
                    {
                        "score": score,
                        "token": token,
                        "token_str": tokenizer.decode([token]),
                        "sequence": sequence,
                    }
                )
            per_mask.append(row)
        return per_mask[0] if single else per_mask

    def warmup(self) -> None:
        with torch.inference_mode():
            self.tm.model(**self.tm.encode([f"warm up {self.tm.tokenizer.mask_token}"]))


# -- token-classification -----------------------------------------------------------------------


def _labels(param: str, value: Any) -> list[str]:
    """ignore_labels: a possibly empty list (empty: report every label, "O" included)."""
    if value == []:
        return []
    labels: list[str] = text_list(100, 100)(param, value)
    return labels


@dataclass
class TokenClassificationRunner:
    """transformers' token-classification pipeline does the aggregation (words from sub-word
    tokens, entity groups from B-/I- tags); requests that aggregate alike share one call."""

    tm: TextModel
    task: str = "token-classification"
    accepts: frozenset[InputKind] = TEXT

    def __post_init__(self) -> None:
        from transformers import pipeline

        self.pipe = pipeline(
            "token-classification", model=self.tm.model, tokenizer=self.tm.tokenizer, device=self.tm.device
        )
        self.rules = {
            "aggregation_strategy": Rule(one_of(*AGGREGATIONS), "simple"),  # the Inference API's default
            "ignore_labels": Rule(_labels, ["O"]),
            "stride": Rule(integer(0, max(0, self.tm.max_tokens // 2 - 2))),
        }

    def prepare(self, request: TaskRequest) -> Prepared:
        texts, many = read_texts(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        if params["stride"] is not None and params["aggregation_strategy"] == "none":
            raise TaskInputError(
                '`parameters.stride` needs an aggregation_strategy other than "none"',
                param="parameters.stride",
            )
        lengths = self.tm.count(texts)
        if params["stride"] is None:  # the text is cut at the model's limit, as the Inference API does
            lengths = [min(n, self.tm.max_tokens) for n in lengths]
        key = (params["aggregation_strategy"], tuple(params["ignore_labels"]), params["stride"])
        return Prepared(texts, params, key=key, size=max(lengths), input_tokens=sum(lengths), many=many)

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        texts = [t for item in items for t in item.payload]
        params = items[0].parameters
        kwargs: dict[str, Any] = {
            "aggregation_strategy": params["aggregation_strategy"],
            "ignore_labels": params["ignore_labels"],
        }
        if params["stride"] is not None:
            kwargs["stride"] = params["stride"]
        found = self.pipe(texts, batch_size=min(len(texts), self.tm.max_batch), **kwargs)
        results: list[TaskOutput | BaseException] = []
        at = 0
        for item in items:
            body = [[_entity(e) for e in entities] for entities in found[at : at + len(item.payload)]]
            at += len(item.payload)
            results.append(TaskOutput(body if item.many else body[0], input_tokens=item.input_tokens))
        return results

    def warmup(self) -> None:
        self.pipe("warm up")


def _entity(raw: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's numpy numbers as plain JSON ones."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "score":
            out[name] = float(value)
        elif name in ("index", "start", "end") and value is not None:
            out[name] = int(value)
        else:
            out[name] = value
    return out
