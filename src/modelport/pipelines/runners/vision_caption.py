"""image-to-text (captioning): VisionEncoderDecoder (ViT + GPT-2 and kin), BLIP and other models
that generate text from pixels alone. transformers 5 removed the image-to-text pipeline, so this
runs `generate` on the model: one batch of same-size pixel tensors, one generate call.

Answers [{"generated_text"}] per image, the list InferenceClient.image_to_text parses (it takes
the first element). Parameters: `max_new_tokens` (flat, as ImageToTextParameters has it) and the
`generation_parameters` object.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelport.pipelines.base import LoadOptions, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.params import Rule, integer
from modelport.pipelines.runners.media_common import from_folder, generation_object, load_model
from modelport.pipelines.runners.vision import ImageRunner

DEFAULT_LONGEST = 512  # when the decoder's config names no maximum length


class CaptionRunner(ImageRunner):
    task = "image-to-text"

    def __init__(self, model: Any, images: Any, tokenizer: Any, dtype: Any, longest: int) -> None:
        super().__init__(None)
        self.model = model
        self.images = images
        self.tokenizer = tokenizer
        self.dtype = dtype
        self.rules: Mapping[str, Rule] = {
            "max_new_tokens": Rule(integer(1, longest)),
            "generation_parameters": Rule(generation_object(self.task, longest)),
        }

    def check(self, params: dict[str, Any]) -> None:
        nested = params["generation_parameters"] or {}
        if params["max_new_tokens"] is not None and "max_new_tokens" in nested:
            raise TaskInputError(
                "`max_new_tokens` is given twice (in `parameters` and in `parameters.generation_parameters`)",
                param="parameters.max_new_tokens",
            )

    def warmup_params(self) -> dict[str, Any]:
        return {"max_new_tokens": 2, "generation_parameters": None}

    def generate_kwargs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = dict(params.get("generation_parameters") or {})
        if params.get("max_new_tokens") is not None:
            kwargs["max_new_tokens"] = params["max_new_tokens"]
        return kwargs

    def run_inputs(self, inputs: list[Any], params: Mapping[str, Any]) -> list[Any]:
        import torch

        pixels = self.images(images=inputs, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.model.device, dtype=self.dtype)
        with torch.inference_mode():
            ids = self.model.generate(pixel_values=pixels, **self.generate_kwargs(params))
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [str(t).strip() for t in texts]

    def shape(self, answer: Any, source: Any) -> Any:
        return [{"generated_text": answer}]


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    loaded = load_model(path, options, AutoModelForImageTextToText)
    config = loaded.model.config
    decoder = getattr(config, "decoder", None) or getattr(config, "text_config", None) or config
    longest = (
        getattr(decoder, "n_positions", None)
        or getattr(decoder, "max_position_embeddings", None)
        or DEFAULT_LONGEST
    )
    return CaptionRunner(
        loaded.model,
        from_folder(AutoImageProcessor, path, options),
        from_folder(AutoTokenizer, path, options),
        loaded.dtype,
        int(longest),
    )
