"""Every way a sequence ends gives all of its KV blocks back and tells its caller.

The pool is small and prefill is chunked (8 tokens a step), so a long prompt spends several
steps half-prefilled: the endings are hit while a sequence holds blocks mid-prefill and
mid-decode, not only between requests. The runner is wrapped to watch the steps and to
inject an out-of-memory error or a crash at a chosen one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from modelport.engine.engine import EngineConfig, LLMEngine
from modelport.engine.loader import load_causal_lm
from modelport.engine.runner import StepResult
from modelport.engine.sampling import SamplingParams
from modelport.engine.scheduler import ScheduledStep
from modelport.engine.sequence import FinishReason, Sequence, SequenceOutput

BLOCKS = 40  # of 4 tokens: 160 tokens in all
LONG_PROMPT = list(range(1, 31))  # 4 chunks of at most 8 tokens
SHORT_PROMPT = [5, 6, 7]
Watch = Callable[[Callable[[ScheduledStep], None]], None]


def _new_engine(tiny_model: Path) -> LLMEngine:
    bytes_per_block = 2 * 2 * 4 * 1 * 64 * 4  # K and V, 2 layers, 4 tokens, 1 kv head, dim 64, fp32
    eng = LLMEngine(
        lambda: load_causal_lm(tiny_model, dtype="float32", device="cpu"),
        EngineConfig(block_size=4, kv_cache_bytes=BLOCKS * bytes_per_block, max_num_batched_tokens=8),
        "tiny",
    )
    eng.start()
    return eng


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[LLMEngine]:
    eng = _new_engine(tiny_model)
    yield eng
    eng.shutdown()


@pytest.fixture
def watch(engine: LLMEngine, monkeypatch: pytest.MonkeyPatch) -> Watch:
    """Run ``before(step)`` on the loop thread ahead of each forward pass (it may raise)."""

    def install(before: Callable[[ScheduledStep], None]) -> None:
        real = engine.runner.execute

        def execute(step: ScheduledStep) -> StepResult:
            before(step)
            return real(step)

        monkeypatch.setattr(engine.runner, "execute", execute)

    return install


def _all_blocks_free(engine: LLMEngine) -> bool:
    alloc = engine.pool.allocator
    return alloc.num_free == alloc.num_blocks == BLOCKS


def _assert_nothing_held(engine: LLMEngine) -> None:
    assert _all_blocks_free(engine), f"{engine.pool.allocator.num_used} blocks leaked"
    stats = engine.stats()
    assert stats.running == 0 and stats.waiting == 0
    assert engine._seqs == {}


async def _settled(engine: LLMEngine) -> None:
    """Aborts land at the next step boundary: wait (bounded) for the loop to get there."""
    for _ in range(500):
        if _all_blocks_free(engine) and not engine._seqs:
            return
        await asyncio.sleep(0.01)


async def _final_outputs(
    engine: LLMEngine, prompt: list[int], params: SamplingParams, n: int = 1, request_id: str | None = None
) -> list[SequenceOutput]:
    finals: list[SequenceOutput] = []
    async for out in engine.generate(prompt, params, n, request_id):
        if out.finish_reason is not None:
            finals.append(out)
    return finals


async def _decode_then_prefill(engine: LLMEngine) -> list[SequenceOutput]:
    """A short request (n=2) starts decoding, then a long prompt is chunked in beside it; the
    final outputs of all three sequences."""
    params = SamplingParams(max_tokens=60, ignore_eos=True)
    decoding_started = asyncio.Event()

    async def short() -> list[SequenceOutput]:
        finals: list[SequenceOutput] = []
        async for out in engine.generate(SHORT_PROMPT, params, 2):
            decoding_started.set()
            if out.finish_reason is not None:
                finals.append(out)
        return finals

    decoding = asyncio.ensure_future(short())
    await asyncio.wait_for(decoding_started.wait(), timeout=30)
    prefilling = await asyncio.wait_for(_final_outputs(engine, LONG_PROMPT, params), timeout=30)
    return await asyncio.wait_for(decoding, timeout=30) + prefilling


def _mid_prefill(step: ScheduledStep) -> bool:
    return any(0 < s.num_cached < len(s.prompt_ids) for s, _ in step.items)


def _decoding(step: ScheduledStep) -> bool:
    return any(s.num_cached >= len(s.prompt_ids) for s, _ in step.items)


def test_finishing_by_length_or_stop_token_frees_every_block(engine: LLMEngine) -> None:
    greedy = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    [by_length] = asyncio.run(_final_outputs(engine, LONG_PROMPT, greedy))
    assert by_length.finish_reason is FinishReason.LENGTH and by_length.error is None
    _assert_nothing_held(engine)

    async def first_token() -> int:
        async for out in engine.generate(SHORT_PROMPT, SamplingParams(max_tokens=1, temperature=0)):
            return out.token_ids[0]
        raise AssertionError("no token")

    stop_at = asyncio.run(first_token())
    stop = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True, stop_token_ids=[stop_at])
    finals = asyncio.run(_final_outputs(engine, SHORT_PROMPT, stop, n=2))
    assert [f.finish_reason for f in finals] == [FinishReason.STOP] * 2
    _assert_nothing_held(engine)


def test_abort_mid_prefill_frees_the_chunks_already_written(engine: LLMEngine, watch: Watch) -> None:
    seen: list[tuple[int, int]] = []  # (tokens cached before this pass, blocks used) for the target

    def abort_after_first_chunk(step: ScheduledStep) -> None:
        for seq, _ in step.items:
            if seq.request_id == "prefill" and 0 < seq.num_cached < len(seq.prompt_ids):
                seen.append((seq.num_cached, engine.pool.allocator.num_used))
                engine.abort("prefill")  # lands before the next step is scheduled

    watch(abort_after_first_chunk)
    params = SamplingParams(max_tokens=5, ignore_eos=True)
    finals = asyncio.run(_final_outputs(engine, LONG_PROMPT, params, n=2, request_id="prefill"))
    assert seen and seen[0][1] > 0, "the abort was meant to land mid-prefill, with blocks held"
    assert [f.finish_reason for f in finals] == [FinishReason.ABORT] * 2
    assert all(f.num_output_tokens == 0 and f.error is None for f in finals)
    _assert_nothing_held(engine)


def test_abort_mid_decode_by_closing_the_iterator_frees_every_block(engine: LLMEngine) -> None:
    async def close_after_three_tokens() -> None:
        gen = engine.generate(SHORT_PROMPT, SamplingParams(max_tokens=100, ignore_eos=True), 2)
        got = 0
        async for _ in gen:
            got += 1
            if got == 3:
                break
        assert engine.pool.allocator.num_used > 0  # still decoding when the client leaves
        await gen.aclose()
        await _settled(engine)

    asyncio.run(close_after_three_tokens())
    _assert_nothing_held(engine)


def test_out_of_memory_mid_prefill_and_mid_decode_frees_every_block(engine: LLMEngine, watch: Watch) -> None:
    """One pass holds a decoding sequence and a half-prefilled one when memory runs out."""
    hit: list[int] = []

    def oom_when_both_are_in_the_pass(step: ScheduledStep) -> None:
        if not hit and _mid_prefill(step) and _decoding(step):
            hit.append(engine.pool.allocator.num_used)
            raise torch.OutOfMemoryError("injected")

    watch(oom_when_both_are_in_the_pass)

    finals = asyncio.run(_decode_then_prefill(engine))
    assert hit and hit[0] > 0, "the injected out-of-memory was meant to hit a pass holding blocks"
    assert "out of memory" in [f.error for f in finals]
    assert all(f.finish_reason is not None for f in finals)
    _assert_nothing_held(engine)
    # the engine goes on serving
    [after] = asyncio.run(_final_outputs(engine, SHORT_PROMPT, SamplingParams(max_tokens=3, ignore_eos=True)))
    assert after.finish_reason is FinishReason.LENGTH and after.num_output_tokens == 3
    _assert_nothing_held(engine)


def test_a_crashed_loop_fails_its_requests_and_frees_every_block(tiny_model: Path) -> None:
    engine = _new_engine(tiny_model)
    real = engine.runner.execute

    def crash_when_both_are_in_the_pass(step: ScheduledStep) -> StepResult:
        if _mid_prefill(step) and _decoding(step):
            raise RuntimeError("injected crash")
        return real(step)

    engine.runner.execute = crash_when_both_are_in_the_pass  # type: ignore[method-assign]

    try:
        finals = asyncio.run(_decode_then_prefill(engine))
        assert engine.dead is not None
        assert [f.finish_reason for f in finals] == [FinishReason.ABORT] * 3
        assert all(f.error == "engine error: RuntimeError" for f in finals)
        _assert_nothing_held(engine)
    finally:
        engine.shutdown()


def test_ending_an_ended_sequence_again_changes_nothing(engine: LLMEngine, watch: Watch) -> None:
    """Paths may race to end one sequence (an abort arriving as it finishes): the second end
    frees no block twice, counts nothing twice and tells the caller nothing more."""
    held: list[Sequence] = []
    watch(lambda step: held.extend(s for s, _ in step.items if not any(s is h for h in held)))
    [final] = asyncio.run(_final_outputs(engine, SHORT_PROMPT, SamplingParams(max_tokens=4, ignore_eos=True)))
    assert final.finish_reason is FinishReason.LENGTH and len(held) == 1
    seq = held[0]
    told: list[SequenceOutput] = []
    seq.sink = told.append
    counted = engine.metrics.requests.labels("tiny", "abort")._value.get()
    engine._end(seq, FinishReason.ABORT, error="again")  # the loop is idle: nothing else runs
    assert told == [] and engine.metrics.requests.labels("tiny", "abort")._value.get() == counted
    assert seq.finish_reason is FinishReason.LENGTH
    _assert_nothing_held(engine)
