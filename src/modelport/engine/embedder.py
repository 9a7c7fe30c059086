"""Sentence embeddings with batching across concurrent requests.

`Embedder.embed` tokenizes on the caller's thread (so bad input fails before it queues) and
hands a job to one worker thread. The worker takes the first job, gathers whatever else
arrives within ``batch_wait_s`` (or until ``max_batch_tokens``), and runs it all as padded
forwards sorted by length; results go back through ``loop.call_soon_threadsafe``. Jobs whose
future was cancelled meanwhile are skipped, so an abandoned request costs nothing.

The forward runs sentence-transformers' own modules (Transformer → Pooling → Dense …) on our
tensors, minus a trailing Normalize, so normalization and Matryoshka truncation
(``dimensions``) can be chosen per request. A plain encoder folder gets mean pooling.

Exceptions:
    EmbedInputError(ValueError)         the request cannot be embedded as sent (HTTP 400/422)
      └ InputTooLongError               an input is over ``max_input_tokens`` and truncation is off
    EmbedderUnavailable(RuntimeError)   not started, shut down, or the worker crashed (503)
    EmbedBackendError(RuntimeError)     the forward pass failed for this batch (424/500)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelport.engine.loader import ModelLoadError, check_weights, load_failure, pick_device, pick_exact_dtype

log = logging.getLogger(__name__)

Vectors = NDArray[np.float32]
Direction = Literal["left", "right"]

# Tokenizing big requests off the event loop keeps other requests responsive
_INLINE_TOKENIZE_CHARS = 20_000


class EmbedInputError(ValueError):
    """The request cannot be embedded as sent; ``param`` names the offending field."""

    def __init__(self, message: str, param: str = "inputs") -> None:
        super().__init__(message)
        self.param = param


class InputTooLongError(EmbedInputError):
    def __init__(self, index: int, length: int, limit: int) -> None:
        super().__init__(
            f"`inputs`[{index}] is {length} tokens long, over this model's limit of {limit} tokens; "
            "shorten it or set `truncate` to true"
        )
        self.index, self.length, self.limit = index, length, limit


class EmbedderUnavailable(RuntimeError):
    """The embedder is not running: not started, shut down, or its worker crashed."""


class EmbedBackendError(RuntimeError):
    """The forward pass failed; the requests of that batch get this error."""


@dataclass(frozen=True)
class EmbedResult:
    vectors: Vectors  # (len(inputs), dimensions), float32
    prompt_tokens: int


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    start: int | None  # character offsets into the input; None for added special tokens
    stop: int | None
    special: bool


@dataclass(frozen=True)
class _Seq:
    ids: list[int]
    pool_skip: int | None  # prompt tokens that pooling must leave out (models with include_prompt=False)


@dataclass
class _Job:
    seqs: list[_Seq]
    future: asyncio.Future[Vectors]
    loop: asyncio.AbstractEventLoop
    enqueued: float

    @property
    def tokens(self) -> int:
        return sum(len(s.ids) for s in self.seqs)


_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)


class EmbedderMetrics:
    def __init__(self, model_name: str) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["model_name"]
        self.requests = Counter(
            "modelport:embedding_requests", "Embedding requests accepted.", labels, registry=r
        ).labels(model_name)
        self.prompt_tokens = Counter(
            "modelport:prompt_tokens", "Tokens embedded.", labels, registry=r
        ).labels(model_name)
        self.waiting = Gauge(
            "modelport:num_requests_waiting", "Requests queued for the embedding worker.", labels, registry=r
        ).labels(model_name)
        self.batch_size = Histogram(
            "modelport:embedding_batch_size",
            "Sequences per forward pass.",
            labels,
            buckets=_BATCH_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.queue_time = Histogram(
            "modelport:request_queue_time_seconds",
            "Time queued before the forward.",
            labels,
            buckets=_TIME_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.forward_time = Histogram(
            "modelport:embedding_forward_seconds",
            "Time of one forward pass.",
            labels,
            buckets=_TIME_BUCKETS,
            registry=r,
        ).labels(model_name)


class Embedder:
    """One embedding model behind an async, batching `embed`. Build it with `Embedder.load`."""

    def __init__(
        self, model: Any, *, model_name: str, max_batch_tokens: int = 8192, batch_wait_s: float = 0.002
    ) -> None:
        from tokenizers import Tokenizer

        self.model = model  # a sentence_transformers.SentenceTransformer
        self.model_name = model_name
        self.tokenizer: Any = model.tokenizer  # the HF tokenizer, for routes that want one
        # a private copy: the HF wrapper re-configures truncation on its backend at every call
        self._tk = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        self._tk.no_truncation()
        self._tk.no_padding()
        self._n_special = self._tk.num_special_tokens_to_add(False)
        modules = list(model.children())
        self.model_normalizes = bool(modules) and type(modules[-1]).__name__ == "Normalize"
        self._modules = modules[:-1] if self.model_normalizes else modules
        self._include_prompt = all(getattr(m, "include_prompt", True) for m in modules)
        self.dimension = int(model.get_embedding_dimension())
        hf_model = getattr(model, "transformers_model", None)
        positions = getattr(getattr(hf_model, "config", None), "max_position_embeddings", None)
        limits = [x for x in (model.max_seq_length, positions) if isinstance(x, int) and x > 0]
        self.max_input_tokens = min(limits) if limits else 512
        self.prompts: dict[str, str] = dict(model.prompts or {})
        self.default_prompt_name: str | None = model.default_prompt_name
        self.device = torch.device(model.device)
        self._vocab_size = (
            int(hf_model.get_input_embeddings().num_embeddings)
            if hf_model is not None
            else len(self.tokenizer)
        )
        self._pad_id = int(self.tokenizer.pad_token_id or 0)
        self._pad_left = self.tokenizer.padding_side == "left"
        self.max_batch_tokens = max_batch_tokens
        self.batch_wait_s = batch_wait_s
        self.metrics = EmbedderMetrics(model_name)
        self.dead: BaseException | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        dtype: str = "auto",
        device: str = "auto",
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        model_name: str | None = None,
        max_batch_tokens: int = 8192,
        batch_wait_s: float = 0.002,
    ) -> Embedder:
        """Load a sentence-transformers folder, or a plain encoder folder (then mean pooling)."""
        from sentence_transformers import SentenceTransformer

        path = Path(path)
        has_safetensors = check_weights(path, allow_pickle)
        dev = pick_device(device)
        torch_dtype = pick_exact_dtype(dtype, dev)  # embeddings are compared across requests
        try:
            kwargs_hf = {"dtype": torch_dtype, "use_safetensors": has_safetensors}
            model = SentenceTransformer(
                str(path),
                device=str(dev),
                trust_remote_code=trust_remote_code,
                local_files_only=True,
                model_kwargs=kwargs_hf,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise load_failure(path, exc, " as an embedding model") from exc
        model.eval()
        if getattr(model.tokenizer, "backend_tokenizer", None) is None:
            raise ModelLoadError(f"{path} has no fast tokenizer (tokenizer.json), which modelport needs")
        return cls(
            model,
            model_name=model_name or path.name,
            max_batch_tokens=max_batch_tokens,
            batch_wait_s=batch_wait_s,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="modelport-embedder", daemon=True)
            self._thread.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the worker after the batch in flight; queued requests fail with EmbedderUnavailable."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
        self._fail_queued(EmbedderUnavailable("the embedding model is shutting down"))

    def warmup(self) -> None:
        """One forward on the calling thread, so the first request doesn't pay for lazy init."""
        seqs = self._encode(["warm up"] * 2, prompt=None, truncate=True, direction="right")
        self._forward([s.ids for s in seqs], None)

    def check_health(self) -> None:
        if self.dead is not None:
            raise EmbedderUnavailable(f"the embedding worker stopped: {self.dead}")
        if self._closed or self._thread is None or not self._thread.is_alive():
            raise EmbedderUnavailable("the embedding model is not running")

    # -- requests ----------------------------------------------------------------------------

    async def embed(
        self,
        inputs: Sequence[str | Sequence[int]],
        *,
        normalize: bool = True,
        truncate: bool = False,
        truncation_direction: Direction = "right",
        prompt_name: str | None = None,
        dimensions: int | None = None,
    ) -> EmbedResult:
        """Embed texts and/or token-id lists (used as given: no special tokens are added to them)."""
        self.check_health()
        if not inputs:
            raise EmbedInputError("`inputs` must not be empty; send at least one text")
        if dimensions is not None and not 1 <= dimensions <= self.dimension:
            raise EmbedInputError(
                f"`dimensions` must be between 1 and {self.dimension}, this model's embedding size",
                param="dimensions",
            )
        prompt = self._prompt(prompt_name)
        chars = sum(len(x) for x in inputs)
        if chars > _INLINE_TOKENIZE_CHARS:
            seqs = await asyncio.to_thread(self._encode, inputs, prompt, truncate, truncation_direction)
        else:
            seqs = self._encode(inputs, prompt, truncate, truncation_direction)
        loop = asyncio.get_running_loop()
        job = _Job(seqs, loop.create_future(), loop, time.monotonic())
        tokens = job.tokens
        self.metrics.requests.inc()
        self.metrics.prompt_tokens.inc(tokens)
        self.metrics.waiting.inc()
        self._queue.put(job)
        if self._closed:  # shut down between the health check and the put: nobody will take it
            self._fail_queued(EmbedderUnavailable("the embedding model is shutting down"))
        pooled = await job.future
        return EmbedResult(_finish(pooled, dimensions, normalize), tokens)

    def tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[Token]]:
        out: list[list[Token]] = []
        for text, enc in zip(
            texts, self._tk.encode_batch(list(texts), add_special_tokens=add_special_tokens), strict=True
        ):
            out.append(
                [
                    Token(i, tok, None, None, True) if special else Token(i, text[s:e], s, e, False)
                    for i, tok, (s, e), special in zip(
                        enc.ids, enc.tokens, enc.offsets, enc.special_tokens_mask, strict=True
                    )
                ]
            )
        return out

    def _prompt(self, prompt_name: str | None) -> str | None:
        name = prompt_name or self.default_prompt_name
        if name is None:
            return None
        if name not in self.prompts:
            known = ", ".join(repr(p) for p in self.prompts) or "none"
            raise EmbedInputError(
                f"`prompt_name` {name!r} is not one of this model's prompts ({known})", param="prompt_name"
            )
        return self.prompts[name]

    def _encode(
        self, inputs: Sequence[str | Sequence[int]], prompt: str | None, truncate: bool, direction: Direction
    ) -> list[_Seq]:
        limit = self.max_input_tokens
        texts = [(i, x) for i, x in enumerate(inputs) if isinstance(x, str)]
        for i, text in texts:
            if not text:
                raise EmbedInputError(f"`inputs`[{i}] is an empty string; send non-empty text")
        encs = self._tk.encode_batch([(prompt or "") + t for _, t in texts], add_special_tokens=False)
        pool_skip = self._prompt_tokens(prompt) if prompt and not self._include_prompt else None
        seqs: dict[int, _Seq] = {}
        for (i, _), enc in zip(texts, encs, strict=True):
            length = len(enc.ids) + self._n_special
            if length > limit:
                if not truncate:
                    raise InputTooLongError(i, length, limit)
                enc.truncate(limit - self._n_special, direction=direction)
            seqs[i] = _Seq(self._tk.post_process(enc, None, True).ids, pool_skip)
        for i, x in enumerate(inputs):
            if not isinstance(x, str):
                seqs[i] = _Seq(self._check_ids(i, x, truncate, direction), None)
        return [seqs[i] for i in range(len(inputs))]

    def _check_ids(self, index: int, ids: Sequence[int], truncate: bool, direction: Direction) -> list[int]:
        if not ids:
            raise EmbedInputError(f"`inputs`[{index}] is an empty list of token ids; send at least one token")
        bad = next((t for t in ids if not 0 <= t < self._vocab_size), None)
        if bad is not None:
            raise EmbedInputError(
                f"`inputs`[{index}] holds token id {bad}, outside this model's vocabulary "
                f"(0..{self._vocab_size - 1})"
            )
        limit = self.max_input_tokens
        if len(ids) > limit:
            if not truncate:
                raise InputTooLongError(index, len(ids), limit)
            return list(ids[:limit] if direction == "right" else ids[-limit:])
        return list(ids)

    def _prompt_tokens(self, prompt: str) -> int:
        """Tokens the prompt occupies at the start of a sequence, leading special tokens included."""
        enc = self._tk.encode(prompt, add_special_tokens=True)
        trailing = 0
        for special in reversed(enc.special_tokens_mask):
            if not special:
                break
            trailing += 1
        return len(enc.ids) - trailing

    # -- worker ------------------------------------------------------------------------------

    def _worker(self) -> None:
        batch: list[_Job] = []
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch, stop = self._gather(first)
                self._run_batch(batch)
                batch = []
                if stop:
                    return
        except BaseException as exc:  # a bug, not a bad request: fail fast from now on
            log.exception("embedding worker crashed")
            self.dead = exc
            err = EmbedderUnavailable(f"the embedding worker stopped: {exc}")
            for job in batch:
                _deliver(job, err)
            self._fail_queued(err)

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """Collect jobs that arrive within the batch window; True when shutdown was requested."""
        batch, tokens = [first], first.tokens
        deadline = time.monotonic() + self.batch_wait_s
        while tokens < self.max_batch_tokens:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
            tokens += job.tokens
        return batch, False

    def _run_batch(self, batch: list[_Job]) -> None:
        self.metrics.waiting.dec(len(batch))
        live = [j for j in batch if not j.future.cancelled()]
        now = time.monotonic()
        for job in live:
            self.metrics.queue_time.observe(now - job.enqueued)
        outputs = [np.empty((len(j.seqs), self.dimension), dtype=np.float32) for j in live]
        refs = [(j, k, s) for j, job in enumerate(live) for k, s in enumerate(job.seqs)]
        # longest first, one prompt length per forward (pooling takes it per batch)
        refs.sort(key=lambda r: (r[2].pool_skip or 0, -len(r[2].ids)))
        try:
            for chunk in self._chunks(refs):
                start = time.monotonic()
                vectors = self._forward([s.ids for _, _, s in chunk], chunk[0][2].pool_skip)
                self.metrics.forward_time.observe(time.monotonic() - start)
                self.metrics.batch_size.observe(len(chunk))
                for (j, k, _), vec in zip(chunk, vectors, strict=True):
                    outputs[j][k] = vec
        except Exception as exc:
            log.exception("embedding forward failed")
            err = EmbedBackendError(f"the embedding forward pass failed ({type(exc).__name__})")
            for job in live:
                _deliver(job, err)
            return
        for job, out in zip(live, outputs, strict=True):
            _deliver(job, out)

    def _chunks(self, refs: list[tuple[int, int, _Seq]]) -> list[list[tuple[int, int, _Seq]]]:
        """Split length-sorted sequences so each padded forward stays within max_batch_tokens."""
        chunks: list[list[tuple[int, int, _Seq]]] = []
        for ref in refs:
            cur = chunks[-1] if chunks else None
            fits = (
                cur is not None
                and cur[0][2].pool_skip == ref[2].pool_skip
                and (len(cur) + 1) * len(cur[0][2].ids) <= self.max_batch_tokens
            )
            if cur is not None and fits:
                cur.append(ref)
            else:
                chunks.append([ref])
        return chunks

    def _forward(self, seqs: list[list[int]], pool_skip: int | None) -> Vectors:
        width = max(len(s) for s in seqs)
        pads = [[self._pad_id] * (width - len(s)) for s in seqs]
        masks = [[0] * (width - len(s)) for s in seqs]
        if self._pad_left:
            ids = [p + s for p, s in zip(pads, seqs, strict=True)]
            mask = [m + [1] * len(s) for m, s in zip(masks, seqs, strict=True)]
        else:
            ids = [s + p for p, s in zip(pads, seqs, strict=True)]
            mask = [[1] * len(s) + m for m, s in zip(masks, seqs, strict=True)]
        features: dict[str, Any] = {
            "input_ids": torch.tensor(ids, device=self.device),
            "attention_mask": torch.tensor(mask, device=self.device),
        }
        if pool_skip:
            features["prompt_length"] = pool_skip
        with torch.inference_mode():
            for module in self._modules:
                features = module(features)
        pooled: Vectors = features["sentence_embedding"].float().cpu().numpy()
        return pooled

    def _fail_queued(self, err: BaseException) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self.metrics.waiting.dec()
                _deliver(job, err)


def _finish(pooled: Vectors, dimensions: int | None, normalize: bool) -> Vectors:
    """Matryoshka truncation first, then normalization, so truncated vectors are unit length."""
    out = pooled[:, :dimensions] if dimensions is not None else pooled
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(out, dtype=np.float32)


def _deliver(job: _Job, outcome: Vectors | BaseException) -> None:
    def settle() -> None:
        if job.future.done():  # cancelled while it ran
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is waiting
        job.loop.call_soon_threadsafe(settle)
