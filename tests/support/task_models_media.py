"""Tiny random-weight vision and audio models, saved as Hub folders, built offline.

Each builder writes config + safetensors weights + the processor files a runner loads, into
`folder`, and returns the folder. Sizes are the smallest the architectures allow (hidden 32,
1-2 layers) so a forward costs milliseconds on one CPU thread. Tokenizers are built from word
lists with `tokenizers` (no download). Also: in-memory PNG/JPEG images and WAV/FLAC clips.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_LABELS = ["cat", "dog", "bird", "fish", "horse"]
AUDIO_LABELS = ["yes", "no", "up", "down"]
DETECTION_LABELS = ["person", "car", "tree"]
SEGMENT_LABELS = ["sky", "road", "grass"]
CAPTION_WORDS = ["a", "photo", "of", "cat", "dog", "on", "the", "grass", "red", "blue"]
CLIP_WORDS = ["a", "photo", "of", "cat", "dog", "bird", "car", "this", "is", "picture", "."]
CTC_LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
SAMPLING_RATE = 16_000


def _labels(names: list[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def word_tokenizer(words: list[str], *, bos: bool, eos: bool) -> Any:
    """A word-level fast tokenizer: [PAD]=0 [UNK]=1 [BOS]=2 [EOS]=3, then `words`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    vocab.update({w: i + 4 for i, w in enumerate(words)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    template = " ".join([*(["[BOS]"] if bos else []), "$A", *(["[EOS]"] if eos else [])])
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


# -- vision ------------------------------------------------------------------------------------


def _vit_config(**extra: Any) -> Any:
    from transformers import ViTConfig

    sizes: dict[str, Any] = {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
    }
    return ViTConfig(**(sizes | extra))


def build_image_classifier(folder: Path, **sizes: Any) -> Path:
    """`sizes`: ViTConfig fields overriding the tiny defaults (image_size, hidden_size, ...); the
    processor resizes to the config's image_size."""
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    _seed()
    config = _vit_config(**_labels(IMAGE_LABELS), **sizes)
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(folder)
    side = config.image_size
    ViTImageProcessorPil(size={"height": side, "width": side}).save_pretrained(folder)
    return folder


def build_clip(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    _seed()
    tok = word_tokenizer(CLIP_WORDS, bos=True, eos=True)
    text = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 32,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    vision = {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    model.save_pretrained(folder)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def _detr_config(heads: int = 2, **extra: Any) -> Any:
    from transformers import DetrConfig, ResNetConfig

    backbone = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 16, 16],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return DetrConfig(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=backbone,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=8,
        **extra,
    )


def build_detr(folder: Path) -> Path:
    from transformers import DetrForObjectDetection, DetrImageProcessorPil

    _seed()
    model = DetrForObjectDetection(_detr_config(**_labels(DETECTION_LABELS))).eval()
    model.save_pretrained(folder)
    DetrImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


def build_detr_panoptic(folder: Path) -> Path:
    """DetrForSegmentation: its mask head needs d_model + heads divisible by 8 (32 + 8)."""
    import torch
    from transformers import DetrForSegmentation, DetrImageProcessorPil

    _seed()
    model = DetrForSegmentation(_detr_config(heads=8, **_labels(SEGMENT_LABELS))).eval()
    with torch.no_grad():  # random weights pick "no object" everywhere: push the real classes up
        model.detr.class_labels_classifier.bias[-1] -= 4.0
    model.save_pretrained(folder)
    DetrImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


def build_segformer(folder: Path) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessorPil

    _seed()
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        **_labels(SEGMENT_LABELS),
    )
    SegformerForSemanticSegmentation(config).eval().save_pretrained(folder)
    SegformerImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_captioner(folder: Path) -> Path:
    """VisionEncoderDecoder: a ViT encoder and a GPT-2 decoder with a word-level tokenizer."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTImageProcessorPil,
    )

    _seed()
    tok = word_tokenizer(CAPTION_WORDS, bos=False, eos=False)
    decoder = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        add_cross_attention=True,
        is_decoder=True,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_vit_config(), decoder)
    config.decoder_start_token_id = 2
    config.pad_token_id = 0
    config.eos_token_id = 3
    model = VisionEncoderDecoderModel(config=config).eval()
    model.generation_config.decoder_start_token_id = 2
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 3
    model.generation_config.bos_token_id = 2
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


# -- audio -------------------------------------------------------------------------------------


def _wav2vec2_config(**extra: Any) -> Any:
    from transformers import Wav2Vec2Config

    sizes: dict[str, Any] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "conv_dim": (16, 16),
        "conv_stride": (5, 4),
        "conv_kernel": (10, 4),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }
    return Wav2Vec2Config(
        feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.0, **(sizes | extra)
    )


def _wav2vec2_features() -> Any:
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLING_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )


def build_ctc(folder: Path, **sizes: Any) -> Path:
    """wav2vec2 CTC with a character vocabulary ("|" between words). `sizes`: Wav2Vec2Config fields
    overriding the tiny defaults (hidden_size, conv_dim, ...)."""
    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC, Wav2Vec2Processor

    _seed()
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: i + 5 for i, c in enumerate(CTC_LETTERS)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    model = Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(vocab), pad_token_id=0, **sizes)).eval()
    with torch.no_grad():  # a nudge towards "|" so a random model's transcripts have several words
        model.lm_head.bias[4] += 0.17
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=_wav2vec2_features(), tokenizer=tok).save_pretrained(folder)
    return folder


def build_audio_classifier(folder: Path) -> Path:
    from transformers import Wav2Vec2ForSequenceClassification

    _seed()
    model = Wav2Vec2ForSequenceClassification(_wav2vec2_config(**_labels(AUDIO_LABELS))).eval()
    model.save_pretrained(folder)
    _wav2vec2_features().save_pretrained(folder)
    return folder


# -- media in memory ---------------------------------------------------------------------------


def image_bytes(width: int = 40, height: int = 30, fmt: str = "PNG", seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def tone(seconds: float = 0.5, rate: int = SAMPLING_RATE, hz: float = 440.0, seed: int = 0) -> Any:
    """A sine plus a little noise, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.standard_normal(t.shape)
    return wave.astype(np.float32)


def audio_bytes(
    seconds: float = 0.5, rate: int = SAMPLING_RATE, fmt: str = "WAV", hz: float = 440.0, seed: int = 0
) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, tone(seconds, rate, hz, seed), rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def oversized_png(width: int = 8000, height: int = 8000) -> bytes:
    """A small PNG whose header claims `width` x `height` (the decoder's size check reads only the
    header, so a real 64-megapixel picture need not be drawn)."""
    import struct
    import zlib

    data = bytearray(image_bytes(8, 8))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)
