"""The embedder's worker: concurrent requests share forwards, cancelled ones are skipped, errors contained."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.engine.embedder import EmbedBackendError, Embedder, EmbedderUnavailable


@pytest.fixture(scope="module")
def st_model(minilm_model: Path) -> Any:
    return Embedder.load(minilm_model).model


@pytest.fixture
def make(st_model: Any) -> Iterator[Any]:
    """A fresh embedder (own worker and metrics) around the already-loaded model."""
    made: list[Embedder] = []

    def build(**options: Any) -> Embedder:
        emb = Embedder(st_model, model_name="minilm", **options)
        emb.start()
        made.append(emb)
        return emb

    yield build
    for emb in made:
        emb.shutdown()


def sample(emb: Embedder, name: str) -> float:
    value = emb.metrics.registry.get_sample_value(name, {"model_name": "minilm"})
    assert value is not None, name
    return value


def test_concurrent_requests_share_one_forward(make: Any) -> None:
    emb = make(batch_wait_s=0.05)
    texts = [f"sentence number {i}" for i in range(8)]

    async def run() -> list[np.ndarray]:
        results = await asyncio.gather(*(emb.embed([t]) for t in texts))
        return [r.vectors[0] for r in results]

    vectors = asyncio.run(run())
    assert sample(emb, "modelport:embedding_batch_size_count") == 1  # one forward pass
    assert sample(emb, "modelport:embedding_batch_size_sum") == 8
    assert sample(emb, "modelport:embedding_requests_total") == 8
    assert sample(emb, "modelport:num_requests_waiting") == 0
    # batching (with padding) changes nothing in the results
    alone = asyncio.run(emb.embed([texts[3]])).vectors[0]
    np.testing.assert_allclose(vectors[3], alone, atol=1e-5)


def test_forwards_stay_within_max_batch_tokens(make: Any) -> None:
    emb = make(max_batch_tokens=64)
    result = asyncio.run(emb.embed(["word " * 20] * 6))  # 22 tokens each: 2 fit per forward
    assert result.vectors.shape == (6, 384)
    assert sample(emb, "modelport:embedding_batch_size_count") == 3


def test_cancelled_request_is_skipped(make: Any) -> None:
    emb = make(batch_wait_s=0.2)

    async def run() -> None:
        kept = asyncio.ensure_future(emb.embed(["kept"]))
        dropped = asyncio.ensure_future(emb.embed(["dropped", "also dropped"]))
        await asyncio.sleep(0.02)  # both are queued; the worker is still gathering
        dropped.cancel()
        assert (await kept).vectors.shape == (1, 384)
        assert dropped.cancelled()

    asyncio.run(run())
    assert sample(emb, "modelport:embedding_batch_size_sum") == 1  # only "kept" was computed


def test_forward_failure_fails_that_batch_only(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = make()

    def boom(seqs: list[list[int]], pool_skip: int | None) -> np.ndarray:
        raise RuntimeError("out of memory")

    with monkeypatch.context() as m:
        m.setattr(emb, "_forward", boom)
        with pytest.raises(EmbedBackendError, match="forward pass failed"):
            asyncio.run(emb.embed(["x"]))
    emb.check_health()
    assert asyncio.run(emb.embed(["x"])).vectors.shape == (1, 384)


def test_worker_crash_marks_unhealthy_and_fails_fast(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = make()

    def crash(batch: object) -> None:
        raise AssertionError("bug")

    monkeypatch.setattr(emb, "_run_batch", crash)
    with pytest.raises(EmbedderUnavailable, match="worker stopped"):
        asyncio.run(emb.embed(["x"]))
    assert emb.dead is not None
    with pytest.raises(EmbedderUnavailable):
        emb.check_health()


def test_shutdown_refuses_new_requests(make: Any) -> None:
    emb = make()
    emb.check_health()
    emb.shutdown()
    with pytest.raises(EmbedderUnavailable, match="not running"):
        asyncio.run(emb.embed(["x"]))


def test_not_started_is_unavailable(st_model: Any) -> None:
    with pytest.raises(EmbedderUnavailable):
        asyncio.run(Embedder(st_model, model_name="minilm").embed(["x"]))
