"""Header-only folders of task models that are not LLMs: a diffusers pipeline, encoders, Whisper.

Shapes are the real models' where the planner's arithmetic reads them (hidden sizes, positions);
the tensors are few and round so that expected byte counts are easy to work out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.model_headers import Tensors, write_header_only, write_hub_folder

BERT_CLASSIFIER: dict[str, Any] = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "torch_dtype": "float32",
    "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
}
# ViT-base: no vocab_size and no max_position_embeddings; (224 / 16)² patches + a class token
VIT_CLASSIFIER: dict[str, Any] = {
    "architectures": ["ViTForImageClassification"],
    "model_type": "vit",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "torch_dtype": "float32",
}
# Whisper-tiny's shape: a flat encoder-decoder config
WHISPER_TINY: dict[str, Any] = {
    "architectures": ["WhisperForConditionalGeneration"],
    "model_type": "whisper",
    "is_encoder_decoder": True,
    "d_model": 384,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "encoder_attention_heads": 6,
    "decoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_ffn_dim": 1536,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "num_mel_bins": 80,
    "vocab_size": 51865,
    "torch_dtype": "float32",
}
SD_INDEX: dict[str, Any] = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.30.0",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "safety_checker": [None, None],
    "feature_extractor": [None, None],
}
# parameters per component (SD-1.5's, rounded to a thousand): written as (n / 1000, 1000) matrices
SD_PARAMS = {"unet": 859_520_000, "vae": 83_653_000, "text_encoder": 123_060_000}


def matrix(params: int, dtype: str = "F32") -> tuple[str, tuple[int, ...]]:
    """One tensor holding `params` parameters (a multiple of 1000)."""
    return dtype, (params // 1000, 1000)


def write_encoder(folder: Path, config: dict[str, Any], params: int, dtype: str = "F32") -> int:
    """A task model folder: its config and one weight file of `params` parameters."""
    tensors: Tensors = {"encoder.weight": matrix(params, dtype)}
    return write_hub_folder(folder, config, tensors)


def write_diffusers(folder: Path, dtype: str = "F32", sample_size: int = 64) -> int:
    """A Stable-Diffusion-1.5-shaped folder; returns the tensor bytes of its plain weight files.
    The unet also has an fp16 variant beside its plain file (the pipeline does not load it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(SD_INDEX))
    configs: dict[str, dict[str, Any]] = {
        "unet": {"_class_name": "UNet2DConditionModel", "sample_size": sample_size, "in_channels": 4},
        "vae": {
            "_class_name": "AutoencoderKL",
            "block_out_channels": [128, 256, 512, 512],
            "latent_channels": 4,
        },
        "text_encoder": {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "hidden_size": 768,
        },
    }
    total = 0
    for name, config in configs.items():
        sub = folder / name
        sub.mkdir(exist_ok=True)
        (sub / "config.json").write_text(json.dumps(config))
        file = "model.safetensors" if name == "text_encoder" else "diffusion_pytorch_model.safetensors"
        total += write_header_only(sub / file, {f"{name}.weight": matrix(SD_PARAMS[name], dtype)})
    write_header_only(
        folder / "unet" / "diffusion_pytorch_model.fp16.safetensors", {"w": matrix(1000, "F16")}
    )
    for name in ("tokenizer", "scheduler"):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "config.json").write_text("{}")
    return total
