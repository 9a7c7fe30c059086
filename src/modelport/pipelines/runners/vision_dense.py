"""Object detection (DETR-like) and image segmentation (Segformer semantic; DETR, Mask2Former and
other panoptic/instance models), on the transformers pipelines.

Detection answers [{"label", "score", "box": {"xmin", "ymin", "xmax", "ymax"}}] in pixels of the
sent image (InferenceClient.object_detection). Segmentation answers [{"label", "score", "mask"}]
with each mask a base64 PNG (white = the segment), which InferenceClient.image_segmentation
decodes into a PIL image; semantic segments have no score (null).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelport.pipelines.base import LoadOptions, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import encode_png
from modelport.pipelines.params import Rule, number, one_of
from modelport.pipelines.runners.media_common import from_folder, load_model
from modelport.pipelines.runners.vision import ImageRunner

SUBTASKS = ("panoptic", "instance", "semantic")  # the pipeline's order of preference
# parameters that only mean something for instance/panoptic segmentation (the pipeline drops them
# for semantic segmentation; here they are a 400 rather than silently ignored)
MASK_PARAMETERS = ("threshold", "mask_threshold", "overlap_mask_area_threshold")


class ObjectDetectionRunner(ImageRunner):
    task = "object-detection"
    rules: Mapping[str, Rule] = {"threshold": Rule(number(0.0, 1.0))}

    def shape(self, answer: Any, source: Any) -> Any:
        return [
            {
                "label": str(d["label"]),
                "score": float(d["score"]),
                "box": {k: int(d["box"][k]) for k in ("xmin", "ymin", "xmax", "ymax")},
            }
            for d in answer
        ]


class SegmentationRunner(ImageRunner):
    task = "image-segmentation"
    rules: Mapping[str, Rule] = {
        "subtask": Rule(one_of(*SUBTASKS)),
        "threshold": Rule(number(0.0, 1.0)),
        "mask_threshold": Rule(number(0.0, 1.0)),
        "overlap_mask_area_threshold": Rule(number(0.0, 1.0)),
    }

    def __init__(self, pipe: Any, subtasks: tuple[str, ...]) -> None:
        super().__init__(pipe)
        self.subtasks = subtasks  # what this model's image processor can post-process

    def check(self, params: dict[str, Any]) -> None:
        subtask = params["subtask"] or self.subtasks[0]
        if subtask not in self.subtasks:
            raise TaskInputError(
                f"this model does not do {subtask} segmentation (it does: {', '.join(self.subtasks)})",
                param="parameters.subtask",
            )
        if subtask == "semantic":
            for name in MASK_PARAMETERS:
                if params[name] is not None:
                    raise TaskInputError(
                        f"`parameters.{name}` applies to instance and panoptic segmentation; this request "
                        "is semantic segmentation (one mask per class, no scores)",
                        param=f"parameters.{name}",
                    )

    def shape(self, answer: Any, source: Any) -> Any:
        return [
            {
                "label": str(s["label"]),
                "score": None if s["score"] is None else float(s["score"]),
                "mask": base64.b64encode(encode_png(s["mask"])).decode("ascii"),
            }
            for s in answer
        ]


def _segmentation_class(path: Path, options: LoadOptions) -> Any:
    """The Auto class whose mapping holds the folder's architecture."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto as auto

    config = AutoConfig.from_pretrained(
        path, local_files_only=True, trust_remote_code=options.trust_remote_code
    )
    archs = set(config.architectures or [])
    for auto_name, names in (
        ("AutoModelForUniversalSegmentation", auto.MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES),
        ("AutoModelForImageSegmentation", auto.MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES),
        ("AutoModelForInstanceSegmentation", auto.MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES),
        ("AutoModelForSemanticSegmentation", auto.MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES),
    ):
        if archs & set(names.values()):
            return getattr(transformers, auto_name)
    return transformers.AutoModelForSemanticSegmentation


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    from transformers import AutoImageProcessor, AutoModelForObjectDetection, pipeline

    images = from_folder(AutoImageProcessor, path, options)
    if task == "object-detection":
        loaded = load_model(path, options, AutoModelForObjectDetection)
        detect = pipeline(
            "object-detection", model=loaded.model, image_processor=images, device=loaded.device
        )
        return ObjectDetectionRunner(detect)
    loaded = load_model(path, options, _segmentation_class(path, options))
    subtasks = tuple(s for s in SUBTASKS if hasattr(images, f"post_process_{s}_segmentation"))
    if not subtasks:
        raise ValueError(f"the image processor of {path} cannot post-process segmentation")
    pipe = pipeline("image-segmentation", model=loaded.model, image_processor=images, device=loaded.device)
    return SegmentationRunner(pipe, subtasks)
