"""What the text runners share: loading a model folder with its tokenizer, the model's token
limit, reading `inputs` as one text or a list, and token counting on the request side.

Two tokenizer instances: `tokenizer` is the batch worker's alone; `counter` serves `prepare`,
which may run on several threads at once, behind a lock (a fast tokenizer's truncation and
padding settings are mutable state shared by all its callers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from modelport.engine.loader import ModelLoadError, check_weights, load_failure, pick_device, pick_exact_dtype
from modelport.pipelines.base import LoadOptions
from modelport.pipelines.errors import TaskInputError

MAX_INPUTS = 64  # texts in one request's list
MAX_CHARS = 100_000  # per text, checked before tokenizing so a huge body costs nothing
DEFAULT_LIMIT = 512  # tokens, when neither tokenizer nor config says

T = TypeVar("T")


@dataclass
class TextModel:
    model: Any
    tokenizer: Any
    counter: Any
    device: torch.device
    max_tokens: int
    max_batch: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[int]:
        """Tokens per text (with special tokens), as the model would see them untruncated."""
        with self.lock:
            enc = self.counter(list(texts), list(pairs) if pairs is not None else None, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """A padded batch on the model's device (worker side)."""
        enc = self.tokenizer(
            list(texts),
            list(pairs) if pairs is not None else None,
            padding=True,
            return_tensors="pt",
            **kwargs,
        )
        return enc.to(self.device)

    def check_lengths(self, lengths: Sequence[int], hint: str = "shorten it", name: str = "inputs") -> None:
        for i, n in enumerate(lengths):
            if n > self.max_tokens:
                where = f"`{name}`" if len(lengths) == 1 else f"`{name}`[{i}]"
                raise TaskInputError(
                    f"{where} is {n} tokens long, over this model's limit of {self.max_tokens} tokens; "
                    + hint,
                    code="input_too_long",
                )


def logits(tm: TextModel, texts: Sequence[str], pairs: Sequence[str] | None, **tokenize: Any) -> torch.Tensor:
    """Sequence-classifier logits for many texts, max_batch rows per forward, as float32 on CPU."""
    out = []
    for rows in chunks(len(texts), tm.max_batch):
        part = [pairs[i] for i in rows] if pairs is not None else None
        enc = tm.encode([texts[i] for i in rows], part, **tokenize)
        with torch.inference_mode():
            out.append(tm.model(**enc).logits.float().cpu())
    return torch.cat(out)


def load_text_model(
    path: Path, options: LoadOptions, model_class: str, *, need_fast: bool = False
) -> TextModel:
    """The model (float32 on CPU unless asked otherwise) and two tokenizers, from the folder only."""
    import transformers
    from transformers import AutoTokenizer

    has_safetensors = check_weights(path, options.allow_pickle)
    device = pick_device(options.device)
    dtype = pick_exact_dtype(options.dtype, device)
    common = {"local_files_only": True, "trust_remote_code": options.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
        counter = AutoTokenizer.from_pretrained(path, **common)
        model = getattr(transformers, model_class).from_pretrained(
            path, dtype=dtype, use_safetensors=has_safetensors, **common
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise load_failure(path, exc, f" with {model_class}") from exc
    if need_fast and not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{path} has no fast tokenizer (tokenizer.json), which this task needs for offsets"
        )
    model.to(device)
    model.eval()
    return TextModel(
        model, tokenizer, counter, device, token_limit(tokenizer, model.config), max(1, options.max_batch)
    )


def token_limit(tokenizer: Any, config: Any) -> int:
    """The longest input the model takes: the tokenizer's limit, bounded by the position table."""
    limits = [
        n
        for n in (
            getattr(tokenizer, "model_max_length", None),
            getattr(config, "max_position_embeddings", None),
        )
        if isinstance(n, int) and 0 < n < 1_000_000
    ]
    return min(limits) if limits else DEFAULT_LIMIT


def read_each(inputs: Any, one: Callable[[Any], T | None], shapes: str) -> tuple[list[T], bool]:
    """`inputs` as one item or a list of 1 to MAX_INPUTS (then the answer is a list), each read by
    `one`, which returns None for a value of the wrong shape; `shapes` names the accepted ones."""
    many = isinstance(inputs, list)
    values = inputs if many else [inputs]
    parsed = [one(v) for v in values]
    if not 0 < len(values) <= MAX_INPUTS or any(p is None for p in parsed):
        raise TaskInputError(f"`inputs` must be {shapes} or a list of 1 to {MAX_INPUTS} of them")
    return [p for p in parsed if p is not None], many


def read_texts(inputs: Any, what: str = "a string") -> tuple[list[str], bool]:
    """One text, or a list of 1 to MAX_INPUTS texts (then the answer is a list)."""
    texts, many = read_each(inputs, lambda v: v if isinstance(v, str) else None, what)
    check_chars(texts)
    return texts, many


def check_chars(texts: Sequence[str], param: str = "inputs") -> None:
    for text in texts:
        if len(text) > MAX_CHARS:
            raise TaskInputError(
                f"`{param}` has a text of {len(text)} characters, over the limit of {MAX_CHARS}",
                param=param,
                status=413,
            )


def chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]
