"""A tiny random-weight Stable Diffusion pipeline saved as a Hub folder (model_index.json,
safetensors per component, no safety checker), built offline in well under a second."""

from __future__ import annotations

import json
import string
from pathlib import Path

# The tokenizer: single letters, letters ending a word, and a few merged words; CLIP's own
# start/end tokens last. Characters outside it (digits, punctuation) are dropped by CLIP's BPE.
_MERGES = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>"), ("r", "e"), ("re", "d</w>")]
MAX_TOKENS = 16


def _write_tokenizer_sources(folder: Path) -> tuple[Path, Path, int]:
    vocab: dict[str, int] = {}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
    for c in string.ascii_lowercase:
        vocab[c + "</w>"] = len(vocab)
    for a, b in _MERGES:
        vocab[a + b] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab))
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES))
    return vocab_file, merges_file, len(vocab)


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Save a tiny StableDiffusionPipeline to `folder` (32x32 images by default) and return it."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
    )
    vocab_file, merges_file, vocab_size = _write_tokenizer_sources(folder / "_tokenizer_sources")
    tokenizer = CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file), model_max_length=MAX_TOKENS)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    for leftover in (folder / "_tokenizer_sources").iterdir():
        leftover.unlink()
    (folder / "_tokenizer_sources").rmdir()
    return folder


def add_safety_checker(folder: Path) -> Path:
    """Give a saved pipeline folder a tiny random safety checker and its image processor, and
    declare them in model_index.json, as a Hub Stable Diffusion repository has them."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    tiny = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 1}
    config = CLIPConfig(
        text_config={
            **tiny,
            "vocab_size": 60,
            "max_position_embeddings": MAX_TOKENS,
            "bos_token_id": 0,
            "eos_token_id": 1,
        },
        vision_config={**tiny, "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )
    StableDiffusionSafetyChecker(config).save_pretrained(
        str(folder / "safety_checker"), safe_serialization=True
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(str(folder / "feature_extractor"))
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    index["feature_extractor"] = ["transformers", type(processor).__name__]
    index["requires_safety_checker"] = True
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
