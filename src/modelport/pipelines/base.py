"""What a task runner is: the contract between the batcher, the server routes and each task."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

InputKind = Literal["text", "json", "image", "audio"]


@dataclass(frozen=True)
class TaskRequest:
    """A request as decoded from the wire, before the task looks at it.

    `inputs`: the JSON value of `inputs` (text, list, dict), or the raw bytes of an image/audio
    body (raw upload or base64 in JSON, already decoded). `parameters`: the JSON `parameters`
    object (possibly empty). `accept`: the client's Accept header (text-to-image may answer PNG).
    """

    inputs: Any
    parameters: Mapping[str, Any] = field(default_factory=dict)
    accept: str = "application/json"
    allow_urls: bool = False  # the endpoint may fetch inputs by URL (egress allowed); off by default


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready to batch. Requests with equal `key` may share a batch; `size`
    orders a batch so similar lengths pad together. `payload` is whatever the runner needs."""

    payload: Any
    parameters: Mapping[str, Any]
    key: Hashable
    size: int = 1
    input_tokens: int = 0
    units: Mapping[str, float] = field(default_factory=dict)
    many: bool = False  # the caller sent a list: answer a list


@dataclass(frozen=True)
class TaskOutput:
    """The answer: `body` is JSON-able, or bytes with `media_type` (a generated image)."""

    body: Any
    media_type: str = "application/json"
    input_tokens: int = 0
    units: Mapping[str, float] = field(default_factory=dict)


class TaskRunner(Protocol):
    """One loaded model serving one task. `prepare` runs on the request's side (may be a worker
    thread for heavy decoding) and raises TaskInputError; `run_batch` runs on the batch worker and
    returns one result or exception per item, in order."""

    task: str
    accepts: frozenset[InputKind]

    def prepare(self, request: TaskRequest) -> Prepared: ...

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]: ...

    def warmup(self) -> None: ...


@dataclass(frozen=True)
class LoadOptions:
    """How to load a task model: from serve options (`modelport serve`)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto: float32 on CPU, bf16/fp16 on CUDA
    allow_pickle: bool = False
    trust_remote_code: bool = False  # also what a custom handler.py needs
    max_batch: int = 32
