"""One task model behind an async `run`: validate on the caller's side, then batch."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelport.pipelines.base import LoadOptions, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.batcher import Batcher
from modelport.pipelines.errors import TaskUnavailable
from modelport.pipelines.registry import load_runner

log = logging.getLogger(__name__)

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)
# a body this large is decoded (image, audio, base64) on a worker thread, not the event loop
_INLINE_BYTES = 64 * 1024


# On CPU a padded batch of audio or images costs as much per input as running them one by one, or
# more: measured on 2 EPYC cores, one thread (benchmarks/README.md, issue 19), a wav2vec2 forward
# took 101 ms per clip alone and 159 ms per clip in batches of 4 (its conv activations leave the
# cache); a ViT took 58 ms alone, 46 ms per image in batches of 4 and 53 ms in a batch of 16.
_CPU_FORWARD_CAPS = {
    "automatic-speech-recognition": 1,
    "audio-classification": 1,
    "image-classification": 4,
    "zero-shot-image-classification": 4,
    "object-detection": 4,
    "image-segmentation": 4,
    "image-to-text": 4,
}


def forward_cap(task: str, device_type: str) -> int | None:
    """The most requests one forward should hold for `task` on this device (None: no cap)."""
    return _CPU_FORWARD_CAPS.get(task) if device_type == "cpu" else None


class TaskMetrics:
    def __init__(self, model_name: str, task: str) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["model_name", "task"]
        self.requests = Counter("modelport:task_requests", "Task requests run.", labels, registry=r).labels(
            model_name, task
        )
        self.waiting = Gauge(
            "modelport:num_requests_waiting", "Requests queued for the task worker.", labels, registry=r
        ).labels(model_name, task)
        self.batch_size = Histogram(
            "modelport:task_batch_size", "Requests per batch.", labels, buckets=_BATCH_BUCKETS, registry=r
        ).labels(model_name, task)
        self.queue_time = Histogram(
            "modelport:request_queue_time_seconds",
            "Time queued before the batch ran.",
            labels,
            buckets=_TIME_BUCKETS,
            registry=r,
        ).labels(model_name, task)
        self.run_time = Histogram(
            "modelport:task_batch_seconds", "Time of one batch.", labels, buckets=_TIME_BUCKETS, registry=r
        ).labels(model_name, task)

    def batch(self, size: int, queued_s: float, run_s: float) -> None:
        self.batch_size.observe(size)
        self.queue_time.observe(queued_s)
        self.run_time.observe(run_s)


class TaskService:
    def __init__(self, runner: TaskRunner, model_name: str, max_batch: int = 32, wait_s: float = 0.004):
        self.runner = runner
        self.task = runner.task
        self.metrics = TaskMetrics(model_name, runner.task)
        self.batcher: Batcher[object, TaskOutput] = Batcher(
            runner.run_batch,  # type: ignore[arg-type]
            name=f"task-{runner.task}",
            max_batch=max_batch,
            wait_s=wait_s,
            on_batch=self.metrics.batch,
        )

    @classmethod
    def load(cls, path: Path, task: str, options: LoadOptions, model_name: str) -> TaskService:
        from modelport.engine.loader import pick_device

        runner = load_runner(path, task, options)
        cap = forward_cap(task, pick_device(options.device).type)
        return cls(runner, model_name, max_batch=min(options.max_batch, cap or options.max_batch))

    @property
    def dead(self) -> BaseException | None:
        return self.batcher.dead

    def start(self) -> None:
        self.runner.warmup()
        self.batcher.start()

    def shutdown(self) -> None:
        self.batcher.shutdown()

    def check_health(self) -> None:
        self.batcher.check_health()

    def healthy(self) -> bool:
        try:
            self.check_health()
        except TaskUnavailable:
            return False
        return True

    async def run(self, request: TaskRequest) -> TaskOutput:
        self.check_health()
        heavy = isinstance(request.inputs, bytes | bytearray | str) and len(request.inputs) > _INLINE_BYTES
        prepared = (
            await asyncio.to_thread(self.runner.prepare, request) if heavy else self.runner.prepare(request)
        )
        self.metrics.requests.inc()
        self.metrics.waiting.inc()
        try:
            out = await self.batcher.submit(prepared, prepared.key, prepared.size)
        finally:
            self.metrics.waiting.dec()
        if not out.input_tokens and not out.units and (prepared.input_tokens or prepared.units):
            out = TaskOutput(out.body, out.media_type, prepared.input_tokens, prepared.units)
        return out
