"""Which runner serves which task; runner modules import torch/transformers/diffusers lazily."""

from __future__ import annotations

import importlib
from pathlib import Path

from modelport.pipelines.base import LoadOptions, TaskRunner

# task -> module under modelport.pipelines.runners with `load(path, task, options) -> TaskRunner`
RUNNERS: dict[str, str] = {
    "text-classification": "text",
    "token-classification": "text",
    "fill-mask": "text",
    "zero-shot-classification": "text",
    "question-answering": "text",
    "table-question-answering": "text",
    "text-ranking": "text",
    "summarization": "seq2seq",
    "translation": "seq2seq",
    "text2text-generation": "seq2seq",
    "image-classification": "vision",
    "zero-shot-image-classification": "vision",
    "object-detection": "vision",
    "image-segmentation": "vision",
    "image-to-text": "vision",
    "automatic-speech-recognition": "audio",
    "audio-classification": "audio",
    "text-to-image": "diffusion",
    "custom": "custom_handler",
}


def load_runner(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    module_name = RUNNERS.get(task)
    if module_name is None:
        raise ValueError(f"modelport has no runner for the task {task!r}")
    module = importlib.import_module(f"modelport.pipelines.runners.{module_name}")
    runner: TaskRunner = module.load(path, task, options)
    return runner
