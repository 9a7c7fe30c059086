"""Task runners as the runner tests use them: loaded and warmed like the server loads them, run
through a real pipelines Batcher, and transformers' own pipeline on the same folder to compare."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from modelport.pipelines.base import LoadOptions, TaskRunner
from modelport.pipelines.batcher import Batcher
from modelport.pipelines.registry import load_runner


def warm_runner(folder: Path, task: str, options: LoadOptions | None = None) -> TaskRunner:
    """The runner for `task` on `folder`, warmed up (first-call costs paid before timing)."""
    runner = load_runner(folder, task, options or LoadOptions())
    runner.warmup()
    return runner


def reference_pipeline(task: str, folder: Path) -> Any:
    """transformers' own pipeline on the same folder, on CPU: the answer a runner must match."""
    from transformers import pipeline

    return pipeline(task, model=str(folder), device="cpu")


def run_batched(runner: Any, prepared: list[Any], wait_s: float = 0.2) -> tuple[list[Any], list[int]]:
    """Submit every prepared request at once to a real Batcher over `runner.run_batch`; answers
    (a TaskOutput or the exception) in order, and the sizes of the batches that ran."""
    sizes: list[int] = []
    batcher: Batcher[Any, Any] = Batcher(
        runner.run_batch,
        name="test",
        max_batch=32,
        wait_s=wait_s,
        on_batch=lambda n, _q, _r: sizes.append(n),
        hold_first=True,  # every request of the test in one window, however the threads interleave
    )
    batcher.start()

    async def submit_all() -> list[Any]:
        jobs = [batcher.submit(p, p.key, p.size) for p in prepared]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    try:
        return asyncio.run(submit_all()), sizes
    finally:
        batcher.shutdown()
