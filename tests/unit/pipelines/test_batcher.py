"""The task batcher: concurrent requests share a run, grouped by key, and a bad one fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from modelport.pipelines.batcher import Batcher
from modelport.pipelines.errors import TaskBackendError, TaskInputError, TaskUnavailable


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, items: Sequence[int]) -> list[int | BaseException]:
        self.gate.wait(5)
        self.batches.append(list(items))
        if any(i < 0 for i in items) and len(items) > 1:
            raise RuntimeError("a negative item breaks the whole batch")
        return [TaskInputError("negative") if i < 0 else i * 10 for i in items]


async def _submit_all(batcher: Batcher[int, int], items: list[int], key: object = "k") -> list[object]:
    return await asyncio.gather(*(batcher.submit(i, key, size=i) for i in items), return_exceptions=True)


async def _behind_a_running_batch(
    rec: Recorder, batcher: Batcher[int, int], *groups: tuple[list[int], object]
) -> list[object]:
    """Submit `groups` while the worker is busy with a first request (0), as under load: the
    next gather then finds them all queued. Answers of the groups, in order."""
    rec.gate.clear()
    first = asyncio.ensure_future(batcher.submit(0, "first"))
    await asyncio.sleep(0.05)  # the worker took the first request and waits at the gate
    pending = [asyncio.ensure_future(_submit_all(batcher, items, key)) for items, key in groups]
    await asyncio.sleep(0.05)
    rec.gate.set()
    await first
    return [r for group in await asyncio.gather(*pending) for r in group]


def test_concurrent_requests_run_as_one_batch_sorted_by_size() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.run, name="t", max_batch=8, wait_s=0.05)
    batcher.start()
    try:
        results = asyncio.run(_behind_a_running_batch(rec, batcher, ([5, 1, 3], "k")))
    finally:
        batcher.shutdown()
    assert results == [50, 10, 30]
    assert rec.batches == [[0], [1, 3, 5]]


def test_max_batch_cuts_batches_and_keys_keep_batches_apart() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.run, name="t", max_batch=2, wait_s=0.05)
    batcher.start()

    try:
        assert asyncio.run(_behind_a_running_batch(rec, batcher, ([1, 2, 3], "a"), ([7], "b"))) == [
            10,
            20,
            30,
            70,
        ]
    finally:
        batcher.shutdown()
    assert sorted(rec.batches[1:]) == [[1, 2], [3], [7]]


def test_a_request_that_breaks_its_batch_fails_alone() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.run, name="t", max_batch=8, wait_s=0.05)
    batcher.start()
    try:
        results = asyncio.run(_behind_a_running_batch(rec, batcher, ([2, -1, 4], "k")))
    finally:
        batcher.shutdown()
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], TaskInputError)
    assert rec.batches[1] == [-1, 2, 4] and sorted(map(tuple, rec.batches[2:])) == [(-1,), (2,), (4,)]


def test_an_unexpected_error_reaches_the_caller_as_a_backend_error() -> None:
    def boom(items: Sequence[int]) -> list[int | BaseException]:
        raise KeyError("inside the model")

    batcher: Batcher[int, int] = Batcher(boom, name="t", wait_s=0.0)
    batcher.start()
    try:
        with pytest.raises(TaskBackendError, match="KeyError"):
            asyncio.run(batcher.submit(1, "k"))
        batcher.check_health()  # a failed request does not stop the worker
    finally:
        batcher.shutdown()


def test_a_stopped_batcher_refuses_requests() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder().run, name="t")
    with pytest.raises(TaskUnavailable, match="not running"):
        asyncio.run(batcher.submit(1, "k"))
    batcher.start()
    batcher.shutdown()
    with pytest.raises(TaskUnavailable):
        asyncio.run(batcher.submit(1, "k"))


def test_a_cancelled_request_costs_no_run() -> None:
    rec = Recorder()
    rec.gate.clear()  # hold the worker inside the first batch
    batcher: Batcher[int, int] = Batcher(rec.run, name="t", max_batch=1, wait_s=0.0)
    batcher.start()

    async def scenario() -> int:
        first = asyncio.ensure_future(batcher.submit(1, "k"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit(2, "k"))
        await asyncio.sleep(0.05)
        second.cancel()
        rec.gate.set()
        return await first

    try:
        assert asyncio.run(scenario()) == 10
    finally:
        batcher.shutdown()
    assert rec.batches == [[1]]


def test_a_lone_request_is_not_held_for_the_batch_window() -> None:
    # a 60 s window: were it applied to a request with nobody else in flight, this would time out
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec.run, name="t", max_batch=8, wait_s=60.0)
    batcher.start()

    async def alone() -> list[int]:
        return [await asyncio.wait_for(batcher.submit(i, "k"), timeout=10) for i in (1, 2, 3)]

    try:
        assert asyncio.run(alone()) == [10, 20, 30]
    finally:
        batcher.shutdown()
    assert rec.batches == [[1], [2], [3]]


def test_cpu_forward_caps_follow_the_measurements() -> None:
    from modelport.pipelines.service import forward_cap

    assert forward_cap("automatic-speech-recognition", "cpu") == 1
    assert forward_cap("image-classification", "cpu") == 4
    assert forward_cap("text-classification", "cpu") is None  # batching pays on CPU for text
    assert forward_cap("automatic-speech-recognition", "cuda") is None
