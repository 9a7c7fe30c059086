"""The engine loop: one thread that schedules, runs and samples, step after step.

The asyncio server talks to it through `LLMEngine.generate` (an async iterator of deltas)
and `abort`. Requests and aborts enter through a lock-protected inbox; outputs go back to
the event loop with ``call_soon_threadsafe``. An abort frees the sequence's KV blocks at the
next step boundary, so a cancelled client costs at most one more forward pass.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import torch

from modelport import envs
from modelport.engine import startup
from modelport.engine.kv_cache import KVCachePool, KVLayout
from modelport.engine.loader import LoadedModel
from modelport.engine.metrics import EngineMetrics
from modelport.engine.runner import ModelRunner
from modelport.engine.sampling import SamplingParams, make_generator
from modelport.engine.scheduler import Scheduler, SchedulerConfig
from modelport.engine.sequence import (
    FinishReason,
    IncrementalDetokenizer,
    SeqStatus,
    Sequence,
    SequenceOutput,
    TokenLogprob,
)

log = logging.getLogger(__name__)


class EngineDeadError(RuntimeError):
    """The engine loop crashed; every request fails fast until the process restarts."""


class RequestRejected(ValueError):
    """The request can never be served by this engine (e.g. longer than the context)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class EngineConfig:
    block_size: int = 16
    kv_cache_bytes: int = 512 * 1024**2
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_n: int = 8


@dataclass(frozen=True)
class EngineStats:
    running: int
    waiting: int
    kv_blocks_total: int
    kv_blocks_used: int
    kv_cache_bytes: int
    steps: int

    @property
    def kv_usage(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_total if self.kv_blocks_total else 0.0


class LLMEngine:
    """Owns the model, the KV pool and the loop thread.

    All torch work (loading, pool allocation, warm-up, every step) happens on the loop thread:
    on CPU, OpenMP keeps a spinning worker team per calling thread, and torch work from two
    threads makes both slower (measured: 40 ms vs 62 ms per decode step on 2 cores).
    """

    def __init__(self, load: Callable[[], LoadedModel], config: EngineConfig, model_name: str) -> None:
        self.config = config
        self.model_name = model_name
        self._load = load
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._started = threading.Event()
        self._inbox: list[Sequence] = []
        self._aborts: list[str] = []
        self._seqs: dict[str, list[Sequence]] = {}  # request_id -> its sequences
        self._thread: threading.Thread | None = None
        self._stop = False
        self._steps = 0
        self.dead: BaseException | None = None
        self.metrics = EngineMetrics(model_name)
        # set on the loop thread by _setup()
        self.loaded: LoadedModel
        self.pool: KVCachePool
        self.scheduler: Scheduler
        self.runner: ModelRunner

    def _setup(self) -> None:
        loaded = self._load()
        config = self.config
        layout = KVLayout(
            loaded.num_layers, loaded.num_kv_heads, loaded.head_dim, config.block_size, loaded.dtype
        )
        num_blocks = layout.blocks_for_budget(config.kv_cache_bytes)
        if num_blocks < 1:
            raise ValueError(
                f"a KV budget of {config.kv_cache_bytes} bytes holds no block of "
                f"{layout.bytes_per_block()} bytes; raise --kv-cache-memory"
            )
        if num_blocks * config.block_size < loaded.max_model_len:
            log.warning(
                "the KV pool (%d tokens) is smaller than one full context (%d tokens)",
                num_blocks * config.block_size,
                loaded.max_model_len,
            )
        self.loaded = loaded
        self.pool = KVCachePool(layout, num_blocks, loaded.device)
        self.scheduler = Scheduler(
            SchedulerConfig(
                config.block_size, config.max_num_seqs, max(config.max_num_batched_tokens, config.block_size)
            ),
            self.pool.allocator,
        )
        self.runner = ModelRunner(loaded, self.pool)
        self.metrics.kv_blocks.set(num_blocks)
        self.metrics.kv_bytes.set(self.pool.nbytes())
        self.metrics.weight_bytes.set(loaded.weight_bytes)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 600.0) -> None:
        """Load the model on the loop thread, warm up, and return once requests can be served."""
        self._thread = threading.Thread(target=self._run, name="modelport-engine", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout=timeout):
            raise RuntimeError(f"the engine did not start within {timeout} s")
        if self.dead is not None:
            raise self.dead

    def shutdown(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _warmup(self) -> None:
        """A tiny generation before reporting ready, so the first request does not pay for lazy init."""
        params = SamplingParams(max_tokens=2, temperature=0.0, ignore_eos=True)
        finished: list[bool] = []
        seq = self._make_seq(
            "warmup", 0, [0, 1, 2], params, lambda out: finished.append(bool(out.finish_reason))
        )
        self._submit([seq])
        self._drain_inbox()
        while self.scheduler.has_work():
            self._step()

    # ---- public API (thread-safe) ---------------------------------------------------------
    def stats(self) -> EngineStats:
        alloc = self.pool.allocator
        return EngineStats(
            running=len(self.scheduler.running),
            waiting=len(self.scheduler.waiting),
            kv_blocks_total=alloc.num_blocks,
            kv_blocks_used=alloc.num_used,
            kv_cache_bytes=self.pool.nbytes(),
            steps=self._steps,
        )

    @property
    def pool_tokens(self) -> int:
        """Tokens the whole KV pool holds: the most one sequence can ever reach."""
        return self.pool.allocator.num_blocks * self.config.block_size

    def check_request(self, prompt_ids: list[int], params: SamplingParams, n: int) -> None:
        """Reject at once what can never be served, naming the field at fault."""
        vocab = int(self.loaded.config.vocab_size)
        params.validate(vocab)
        if not prompt_ids:
            raise RequestRejected("the prompt is empty", "prompt")
        if any(not 0 <= t < vocab for t in prompt_ids):
            raise RequestRejected(f"prompt token ids must be in [0, {vocab})", "prompt")
        if not 1 <= n <= self.config.max_n:
            raise RequestRejected(f"n must be between 1 and {self.config.max_n}, got {n}", "n")
        limit = self.loaded.max_model_len
        if len(prompt_ids) >= limit:
            raise RequestRejected(
                f"the prompt has {len(prompt_ids)} tokens; this model's context is {limit} tokens "
                "(prompt + completion). Shorten the prompt.",
                "messages",
            )
        if len(prompt_ids) + params.max_tokens > limit:
            raise RequestRejected(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({params.max_tokens}) exceeds the context "
                f"of {limit} tokens; lower max_tokens to at most {limit - len(prompt_ids)}",
                "max_tokens",
            )
        pool = self.pool_tokens
        if len(prompt_ids) >= pool:
            raise RequestRejected(
                f"the prompt has {len(prompt_ids)} tokens; this replica's whole KV cache holds {pool} "
                "tokens (raise --kv-cache-memory, or shorten the prompt)",
                "messages",
            )
        # a sequence that cannot fit even alone would preempt itself and recompute forever
        if not self.scheduler.fits_at_all(len(prompt_ids) + params.max_tokens):
            raise RequestRejected(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({params.max_tokens}) needs more KV cache "
                f"than this replica's whole pool holds ({pool} tokens); lower max_tokens to at most "
                f"{pool - len(prompt_ids)}",
                "max_tokens",
            )

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams, n: int = 1, request_id: str | None = None
    ) -> AsyncGenerator[SequenceOutput, None]:
        """Stream deltas of all ``n`` sequences until each has finished. Cancelling the iterator aborts."""
        if self.dead is not None:
            raise EngineDeadError(f"the engine stopped: {self.dead}")
        self.check_request(prompt_ids, params, n)
        request_id = request_id or uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[SequenceOutput] = asyncio.Queue()

        def sink(out: SequenceOutput) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, out)

        seqs = [self._make_seq(request_id, i, prompt_ids, params, sink) for i in range(n)]
        self._submit(seqs)
        remaining = n
        try:
            while remaining:
                out = await queue.get()
                if out.finish_reason is not None:
                    remaining -= 1
                yield out
        finally:
            if remaining:
                self.abort(request_id)

    def abort(self, request_id: str) -> None:
        with self._lock:
            self._aborts.append(request_id)
        self._wake.set()

    # ---- engine thread --------------------------------------------------------------------
    def _make_seq(
        self,
        request_id: str,
        index: int,
        prompt_ids: list[int],
        params: SamplingParams,
        sink: Callable[[SequenceOutput], None],
    ) -> Sequence:
        seed = None if params.seed is None else params.seed + index
        return Sequence(
            request_id=request_id,
            index=index,
            prompt_ids=list(prompt_ids),
            params=params,
            eos_ids=self.loaded.eos_ids,
            max_model_len=self.loaded.max_model_len,
            detokenizer=IncrementalDetokenizer(self.loaded.tokenizer),
            generator=None if params.greedy else make_generator(seed),
            sink=sink,
        )

    def _submit(self, seqs: list[Sequence]) -> None:
        with self._lock:
            if self.dead is not None:  # set under this lock: nothing enters a dead loop's inbox
                raise EngineDeadError(f"the engine stopped: {self.dead}")
            self._inbox.extend(seqs)
        self._wake.set()

    def _drain_inbox(self) -> None:
        with self._lock:
            new, self._inbox = self._inbox, []
            aborts, self._aborts = self._aborts, []
        for seq in new:
            self._seqs.setdefault(seq.request_id, []).append(seq)
            self.scheduler.add(seq)
        for rid in aborts:
            for seq in list(self._seqs.get(rid, [])):
                self._end(seq, FinishReason.ABORT)

    def _end(
        self,
        seq: Sequence,
        reason: FinishReason,
        error: str | None = None,
        last: SequenceOutput | None = None,
    ) -> None:
        """The one way a sequence ends, whatever ended it (eos, length or stop string; the
        client gone; out of memory; a crashed loop): out of the scheduler's queues with its KV
        blocks back, out of the request map, counted, and its caller sent the final output.

        ``last`` is the final delta of a sequence that finished by itself (its last token);
        otherwise the caller gets an empty delta ending with ``reason``, and ``error`` when it
        failed rather than was cancelled. Ending an ended sequence does nothing, so every path
        may end what it holds without asking who ended it first.
        """
        if seq.status is SeqStatus.FINISHED:
            return
        self.scheduler.remove(seq)
        group = self._seqs.get(seq.request_id)
        if group is not None:
            if seq in group:
                group.remove(seq)
            if not group:
                del self._seqs[seq.request_id]
        self._count_end(seq, reason)
        seq.sink(last if last is not None else seq.finish(reason, error=error))

    def _count_end(self, seq: Sequence, reason: FinishReason) -> None:
        m = self.metrics
        m.finished(reason.value)
        if reason is FinishReason.ABORT:
            return  # the latency histograms describe completed sequences only
        now = time.monotonic()
        m.e2e.observe(now - seq.arrival)
        if seq.first_token_at is not None and len(seq.output_ids) > 1:
            m.tpot.observe((now - seq.first_token_at) / (len(seq.output_ids) - 1))

    def _update_gauges(self) -> None:
        m = self.metrics
        m.running.set(len(self.scheduler.running))
        m.waiting.set(len(self.scheduler.waiting))
        m.kv_usage.set(self.pool.allocator.usage())

    def _run(self) -> None:
        try:
            self._setup()
            startup.mark("kv_cache")
            self._warmup()
            startup.mark("warmup")
        except BaseException as exc:
            log.exception("engine start failed")
            self.dead = exc
            self._started.set()
            return
        self._started.set()
        self._loop()

    def _loop(self) -> None:
        fail_at = envs.test_fail_engine_after_steps()  # test-only fault injection; 0 = off
        steps = 0
        try:
            while not self._stop:
                self._drain_inbox()
                if not self.scheduler.has_work():
                    self._update_gauges()
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    continue
                steps += 1
                if steps == fail_at:
                    raise RuntimeError(
                        f"fault injected at step {steps} ({envs.TEST_FAIL_ENGINE_AFTER_STEPS.name})"
                    )
                self._step()
        except BaseException as exc:  # the loop must never die silently
            log.exception("engine loop crashed")
            with self._lock:
                self.dead = exc
            self._fail_all(f"engine error: {type(exc).__name__}")

    def _fail_all(self, message: str) -> None:
        """Fail every request the dead loop holds, including those still in the inbox."""
        with self._lock:
            new, self._inbox = self._inbox, []
        for seq in new:
            self._seqs.setdefault(seq.request_id, []).append(seq)
        for group in list(self._seqs.values()):
            for seq in list(group):
                self._end(seq, FinishReason.ABORT, error=message)

    def _step(self) -> None:
        step = self.scheduler.schedule()
        self.metrics.preemptions.inc(len(step.preempted))
        self._update_gauges()
        if not step.items:
            self._wake.wait(timeout=0.01)
            self._wake.clear()
            return
        now = time.monotonic()
        for seq, _ in step.items:
            if seq.scheduled_at is None:
                seq.scheduled_at = now
                self.metrics.queue_time.observe(now - seq.arrival)
        prefill_tokens = sum(n for s, n in step.items if s.num_cached < len(s.prompt_ids))
        try:
            result = self.runner.execute(step)
        except torch.OutOfMemoryError:
            log.exception("out of memory in a forward pass; failing this step's sequences")
            for seq, _ in step.items:
                self._end(seq, FinishReason.ABORT, error="out of memory")
            return
        self._steps += 1
        self.metrics.prompt_tokens.inc(prefill_tokens)
        if result.result is None:
            return
        res = result.result
        self.metrics.generation_tokens.inc(len(result.sampled))
        for i, seq in enumerate(result.sampled):
            lp = None
            if res.logprobs is not None and seq.params.logprobs is not None:
                lp = TokenLogprob(
                    res.token_ids[i], res.logprobs[i], res.top_logprobs[i] if res.top_logprobs else []
                )
            first = seq.first_token_at is None
            out = seq.append(res.token_ids[i], lp)
            if first and seq.first_token_at is not None:
                self.metrics.ttft.observe(seq.first_token_at - seq.arrival)
            if out.finish_reason is not None:
                self._end(seq, out.finish_reason, last=out)
            else:
                seq.sink(out)
