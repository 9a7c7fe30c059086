"""What task models that are not LLMs need in memory: encoders, encoder-decoders, diffusion.

An LLM is sized by its KV cache (planner.py). The other models hold little or no cache; what
they need besides their weights is working memory for one batch, estimated here per batch item
(estimates, not measurements; a = activation bytes, 2 at 16 bits, 4 at fp32):

- encoders (classifiers, NER, QA, embeddings, ViT, CLIP, wav2vec2-style audio models; every
  task that generates nothing): without gradients only one layer's activations are alive at a
  time, so per input ``P × (4h + 2i) × a`` on its largest tower (P positions, h hidden size, i the
  MLP width: the hidden state, q, k, v, the MLP's inner width and its activation's output), plus
  ``P × V × a`` of logits for fill-mask (V the vocabulary). Attention scores are not counted:
  transformers' default attention (SDPA) does not hold the ``P × P`` matrix. The batch is
  `modelport serve --max-batch` (32 by default) with every input at the tower's most positions
  (at most 8,192), an upper bound since most inputs are shorter. No KV cache and no context length to plan.
- encoder-decoders (seq2seq text, Whisper, image-to-text): the encoder's activations as above
  plus the decoder's key/value cache for each input, ``2 × L × h × (T + S) × a`` for T tokens of
  its own (the decoder's most positions) and cross-attention keys over the S encoder positions.
- diffusion pipelines (text-to-image): weights are every component's (unet or transformer, vae,
  text encoders); per image the latents of the guided pair (``2 × c × H/f × W/f × 4`` bytes) and
  ``3 KiB × a`` per output pixel (6 KiB at 16 bits, so 1.5 GiB at 512×512, 6 GiB at 1024×1024)
  for the peak of the VAE decoder's full-resolution feature maps and the denoiser's activations.
  The resolution is the pipeline's own default (the unet's or transformer's sample size × the
  VAE's scale factor), else 512×512; images are drawn one at a time (batch 1).
On a GPU the task pipelines run on one device, with weights in 16 bits (bf16 where the GPU has
it, as `dtype=auto` loads them) and 1 GiB more for the CUDA context, cuBLAS workspace and the
allocator's slack; on the CPU the builtin runtime's 520 MiB, a diffusion pipeline in fp32 and
other models in the checkpoint's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelport.models.architecture import Tower
from modelport.models.hardware import HardwareOption
from modelport.models.quantization import SCHEMES, Scheme
from modelport.models.tasks import GENERATION, SEQ2SEQ

LLM, ENCODER, SEQ2SEQ_KIND, DIFFUSION = "llm", "encoder", "seq2seq", "diffusion"
DEFAULT_TASK_BATCH = 32  # `modelport serve --max-batch`'s default
TASK_GPU_OVERHEAD = 2**30
PIXEL_WORK_BYTES = 3 * 1024  # per output pixel and activation byte
DEFAULT_IMAGE_SIDE = 512
# Inputs are planned at most this long: a long-context encoder (8k-32k positions) is rarely sent
# a whole batch of full-length inputs, and planning for one would refuse hardware that serves it.
MAX_PLANNED_POSITIONS = 8192
_GENERATING_MEDIA = ("automatic-speech-recognition", "text-to-speech", "image-to-text")


@dataclass(frozen=True)
class Component:
    """One part of a diffusion pipeline, from its subfolder's weight headers."""

    name: str  # the subfolder: unet, vae, text_encoder...
    class_name: str  # as model_index.json names it: UNet2DConditionModel, CLIPTextModel...
    parameters: int
    bytes: int
    scheme: str


@dataclass(frozen=True)
class DiffusionFacts:
    pipeline: str  # model_index.json's _class_name
    native_side: int | None  # the pipeline's default image side in pixels; None: unknown
    latent_channels: int
    vae_scale: int  # pixels per latent along a side


@dataclass(frozen=True)
class TaskShape:
    """One batch of a task model: how many items and what each needs beyond the weights."""

    kind: str
    batch: int
    item_bytes: int
    what: str  # the item in words: "512-position inputs", "1024×1024 images"
    positions: int  # the longest input's positions (0 for images drawn)


def workload_kind(tasks: Sequence[str], towers: Sequence[Tower], diffusion: bool) -> str:
    """LLM unless the model's default task says otherwise (no task found: planned as an LLM)."""
    if diffusion:
        return DIFFUSION
    task = next((t for t in tasks if t != "custom"), None)
    if task is None or task == GENERATION:
        return LLM
    if task in SEQ2SEQ:
        return SEQ2SEQ_KIND
    if task in _GENERATING_MEDIA and any(t.name == "decoder" for t in towers):
        return SEQ2SEQ_KIND
    if task == "image-to-text":
        return SEQ2SEQ_KIND  # BLIP and GIT decode with their text tower
    return ENCODER


def task_scheme(kind: str, planned: Scheme, asked: bool, option: HardwareOption) -> Scheme:
    """The weights as the task pipelines load them (see the module docstring)."""
    if asked or not planned.float_weights:
        return planned
    if option.is_cpu:
        return SCHEMES["fp32"] if kind == DIFFUSION else planned
    return SCHEMES["bf16"] if option.accelerator.bf16 else SCHEMES["fp16"]


def task_hardware_problem(scheme: Scheme) -> str | None:
    if scheme.float_weights:
        return None
    return f"the task pipelines load bf16, fp16 or fp32 weights, not {scheme.label}"


def task_overhead(option: HardwareOption, builtin_runtime: int) -> int:
    return builtin_runtime if option.is_cpu else TASK_GPU_OVERHEAD


def task_shape(
    kind: str,
    towers: Sequence[Tower],
    tasks: Sequence[str],
    vocab: int,
    diffusion: DiffusionFacts | None,
    act_bytes: int,
    batch: int | None = None,
    resolution: tuple[int, int] | None = None,
) -> TaskShape:
    if kind == DIFFUSION:
        return _image_shape(diffusion, act_bytes, batch or 1, resolution)
    decoder = next((t for t in towers if t.name == "decoder"), None)
    if kind == SEQ2SEQ_KIND and decoder is None:
        decoder = next((t for t in towers if t.name == "text"), None)  # BLIP, GIT: the text tower decodes
    encoders = [t for t in towers if t is not decoder] or list(towers)
    widest = max(
        encoders, key=lambda t: t.positions * (4 * t.hidden_size + 2 * t.intermediate_size), default=None
    )
    positions = min(widest.positions, MAX_PLANNED_POSITIONS) if widest else 0
    item = positions * (4 * widest.hidden_size + 2 * widest.intermediate_size) * act_bytes if widest else 0
    if "fill-mask" in tasks:
        item += positions * vocab * act_bytes
    what = f"{positions:,}-position inputs"
    if kind == SEQ2SEQ_KIND and decoder is not None:
        source = max((t.positions for t in encoders if t is not decoder), default=0)
        answer = min(decoder.positions, MAX_PLANNED_POSITIONS)
        item += (
            2
            * decoder.layers
            * decoder.hidden_size
            * (answer + min(source, MAX_PLANNED_POSITIONS))
            * act_bytes
        )
        what += f" with {answer:,}-token answers"
    if item <= 0:
        # a config with no transformer sizes (a convolutional vision model): 32 MiB per input
        item, what = 32 * 2**20, "inputs of unknown size"
    return TaskShape(kind, batch or DEFAULT_TASK_BATCH, item, what, positions)


def _image_shape(
    facts: DiffusionFacts | None, act_bytes: int, batch: int, resolution: tuple[int, int] | None
) -> TaskShape:
    side = (facts.native_side if facts else None) or DEFAULT_IMAGE_SIDE
    width, height = resolution or (side, side)
    scale = facts.vae_scale if facts else 8
    channels = facts.latent_channels if facts else 4
    latents = 2 * channels * -(-width // scale) * -(-height // scale) * 4
    item = latents + width * height * PIXEL_WORK_BYTES * act_bytes
    return TaskShape(DIFFUSION, batch, item, f"{width}×{height} images", 0)
