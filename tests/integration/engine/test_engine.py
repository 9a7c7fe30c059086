"""The real engine on the tiny model: exact agreement with transformers `generate`, and no leaks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from modelport.engine.engine import EngineConfig, LLMEngine, RequestRejected
from modelport.engine.loader import ModelLoadError, load_causal_lm
from modelport.engine.sampling import SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[LLMEngine]:
    # 60 blocks of 4 tokens (2 layers, 1 kv head, dim 64, fp32): small enough that 12 prompts must preempt
    budget = 60 * (2 * 2 * 4 * 1 * 64 * 4)
    eng = LLMEngine(
        lambda: load_causal_lm(tiny_model, dtype="float32", device="cpu"),
        EngineConfig(block_size=4, kv_cache_bytes=budget),
        "tiny",
    )
    eng.start()
    assert eng.stats().kv_blocks_total == 60
    yield eng
    eng.shutdown()


async def _generate(engine: LLMEngine, prompt: list[int], params: SamplingParams) -> list[int]:
    tokens: list[int] = []
    async for out in engine.generate(prompt, params):
        tokens += out.token_ids
    return tokens


def test_batched_greedy_equals_transformers_generate_even_with_preemption(
    engine: LLMEngine, tiny_model: Path
) -> None:
    from transformers import AutoModelForCausalLM

    prompts = [list(range(5 + i, 20 + 3 * i)) for i in range(12)]
    params = SamplingParams(max_tokens=30, temperature=0, ignore_eos=True)
    before = engine.metrics.preemptions._value.get()

    async def run_all() -> list[list[int]]:
        return list(await asyncio.gather(*[_generate(engine, p, params) for p in prompts]))

    got = asyncio.run(run_all())
    assert engine.metrics.preemptions._value.get() > before, "the test is meant to exercise preemption"
    ref = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    for prompt, tokens in zip(prompts, got, strict=True):
        expected = ref.generate(torch.tensor([prompt]), max_new_tokens=30, min_new_tokens=30, do_sample=False)
        assert tokens == expected[0, len(prompt) :].tolist()
    assert engine.stats().kv_blocks_used == 0


def test_cancelled_generation_frees_blocks_at_once(engine: LLMEngine) -> None:
    async def cancel_midway() -> None:
        gen = engine.generate([1, 2, 3, 4, 5], SamplingParams(max_tokens=200, ignore_eos=True))
        got = 0
        async for _ in gen:
            got += 1
            if got == 5:
                break
        await gen.aclose()
        for _ in range(200):
            if engine.stats().kv_blocks_used == 0:
                return
            await asyncio.sleep(0.01)

    asyncio.run(cancel_midway())
    assert engine.stats().kv_blocks_used == 0 and engine.stats().running == 0


def test_requests_that_can_never_fit_are_rejected(engine: LLMEngine) -> None:
    with pytest.raises(RequestRejected):
        engine.check_request([1] * 4000, SamplingParams(max_tokens=1), 1)
    with pytest.raises(RequestRejected):
        engine.check_request([], SamplingParams(max_tokens=1), 1)
    with pytest.raises(RequestRejected):
        engine.check_request([1], SamplingParams(max_tokens=1), 99)


def test_pickle_only_folder_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelLoadError, match="allow-pickle"):
        load_causal_lm(folder)


def test_sliding_window_models_are_capped_to_their_window(tmp_path: Path, tiny_model: Path) -> None:
    import json
    import shutil

    folder = tmp_path / "windowed"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "sliding_window": 256}))
    assert load_causal_lm(folder, dtype="float32", device="cpu").max_model_len == 256
    assert load_causal_lm(folder, dtype="float32", device="cpu", max_model_len=4096).max_model_len == 256


def test_a_sequence_longer_than_the_whole_pool_is_refused_not_recomputed_forever(engine: LLMEngine) -> None:
    """The pool holds 240 tokens and the context 2048: prompt + max_tokens past the pool would
    preempt itself at every step and never finish."""
    prompt = list(range(1, 11))
    with pytest.raises(RequestRejected) as info:
        engine.check_request(prompt, SamplingParams(max_tokens=231), 1)
    assert info.value.param == "max_tokens" and "at most 230" in str(info.value)
    with pytest.raises(RequestRejected):
        engine.check_request(list(range(1, 241)), SamplingParams(max_tokens=1), 1)

    async def refused_then_fitting() -> list[int]:
        with pytest.raises(RequestRejected):
            await _generate(engine, prompt, SamplingParams(max_tokens=500, ignore_eos=True))
        return await _generate(engine, prompt, SamplingParams(max_tokens=230, temperature=0, ignore_eos=True))

    assert len(asyncio.run(refused_then_fitting())) == 230
    assert engine.stats().kv_blocks_used == 0 and engine.stats().waiting == 0


def test_out_of_memory_fails_the_step_and_gives_everything_back(
    engine: LLMEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forward pass that runs out of memory fails its sequences with an error; their blocks
    and their entries in the request map are released, and the next request is served."""
    real = engine.runner.execute
    calls = {"n": 0}

    def oom_once(step: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise torch.OutOfMemoryError("injected")
        return real(step)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.runner, "execute", oom_once)

    async def run() -> list[str | None]:
        errors: list[str | None] = []

        async def one(prompt: list[int]) -> None:
            async for out in engine.generate(prompt, SamplingParams(max_tokens=20, ignore_eos=True), 2):
                if out.finish_reason is not None:
                    errors.append(out.error)

        await asyncio.gather(one([1, 2, 3]), one([4, 5, 6, 7]))
        return errors

    errors = asyncio.run(run())
    assert "out of memory" in errors and calls["n"] >= 3
    assert engine.stats().kv_blocks_used == 0 and engine.stats().running == 0
    assert engine._seqs == {}
    assert len(asyncio.run(_generate(engine, [1, 2], SamplingParams(max_tokens=3, ignore_eos=True)))) == 3
