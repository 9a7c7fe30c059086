"""Image tasks: classification, zero-shot classification (CLIP-like), object detection,
segmentation and captioning (image-to-text).

Inputs are images: a raw upload, base64 text in JSON, or a JSON list of those (answered with a
list). Each is decoded to RGB in `prepare` (media.decode_image: size limit, clear 400s). The
classifiers, the detector and the segmenter run a transformers pipeline over the batch (the same
pre- and post-processing as the Hub's widgets); captioning runs `generate` on the model, as
transformers 5 dropped the image-to-text pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelport.pipelines.base import InputKind, LoadOptions, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import decode_image
from modelport.pipelines.params import Rule, text, text_list
from modelport.pipelines.runners.media_common import (
    CLASSIFY_RULES,
    MediaPipelineRunner,
    from_folder,
    load_model,
)

IMAGE: frozenset[InputKind] = frozenset({"image"})
MAX_LABELS = 100  # candidate labels per zero-shot request


class ImageRunner(MediaPipelineRunner):
    what = "image"
    accepts = IMAGE

    def decode(self, data: bytes) -> Any:
        return decode_image(data)

    def warmup(self) -> None:
        from PIL import Image

        self.run_inputs([Image.new("RGB", (64, 48), (120, 80, 40))], self.warmup_params())

    def warmup_params(self) -> dict[str, Any]:
        return {name: rule.default for name, rule in self.rules.items()}


class ImageClassificationRunner(ImageRunner):
    """Answers [{"label", "score"}] sorted by score (InferenceClient.image_classification)."""

    task = "image-classification"
    rules = CLASSIFY_RULES

    def shape(self, answer: Any, source: Any) -> Any:
        return [{"label": str(a["label"]), "score": float(a["score"])} for a in answer]


def _template(param: str, value: Any) -> str:
    template: str = text(1000)(param, value)
    try:
        template.format("label")
    except (IndexError, KeyError, ValueError):
        raise TaskInputError(
            f"`{param}` must hold one {{}} where the label goes, e.g. 'This is a photo of {{}}.'", param=param
        ) from None
    if "{}" not in template:
        raise TaskInputError(f"`{param}` must hold {{}} where the label goes", param=param)
    return template


class ZeroShotImageRunner(ImageRunner):
    """Answers [{"label", "score"}] sorted by score (InferenceClient.zero_shot_image_classification)."""

    task = "zero-shot-image-classification"
    rules: Mapping[str, Rule] = {
        "candidate_labels": Rule(text_list(MAX_LABELS, 200)),
        "hypothesis_template": Rule(_template),
    }

    def check(self, params: dict[str, Any]) -> None:
        if params["candidate_labels"] is None:
            raise TaskInputError(
                "`parameters.candidate_labels` is required: the labels to choose from",
                param="parameters.candidate_labels",
            )

    def warmup_params(self) -> dict[str, Any]:
        return {"candidate_labels": ["a", "b"], "hypothesis_template": None}

    def shape(self, answer: Any, source: Any) -> Any:
        return [{"label": str(a["label"]), "score": float(a["score"])} for a in answer]


def _image_classification(path: Path, options: LoadOptions) -> TaskRunner:
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    loaded = load_model(path, options, AutoModelForImageClassification)
    pipe = pipeline(
        "image-classification",
        model=loaded.model,
        image_processor=from_folder(AutoImageProcessor, path, options),
        device=loaded.device,
    )
    return ImageClassificationRunner(pipe)


def _zero_shot(path: Path, options: LoadOptions) -> TaskRunner:
    from transformers import (
        AutoImageProcessor,
        AutoModelForZeroShotImageClassification,
        AutoTokenizer,
        pipeline,
    )

    loaded = load_model(path, options, AutoModelForZeroShotImageClassification)
    pipe = pipeline(
        "zero-shot-image-classification",
        model=loaded.model,
        tokenizer=from_folder(AutoTokenizer, path, options),
        image_processor=from_folder(AutoImageProcessor, path, options),
        device=loaded.device,
    )
    return ZeroShotImageRunner(pipe)


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    if task == "image-classification":
        return _image_classification(path, options)
    if task == "zero-shot-image-classification":
        return _zero_shot(path, options)
    if task in ("object-detection", "image-segmentation"):
        from modelport.pipelines.runners import vision_dense

        runner: TaskRunner = vision_dense.load(path, task, options)
        return runner
    if task == "image-to-text":
        from modelport.pipelines.runners import vision_caption

        captioner: TaskRunner = vision_caption.load(path, task, options)
        return captioner
    raise ValueError(f"the vision runner does not serve {task!r}")
