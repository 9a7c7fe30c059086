"""A diffusers folder read for planning: each component's weight headers and the pipeline's shape.

model_index.json names the components (`"unet": ["diffusers", "UNet2DConditionModel"]`); each
one that has weights keeps them in its subfolder as safetensors, sharded or not. A folder may
also hold variants beside them (`diffusion_pytorch_model.fp16.safetensors`): the pipeline loads
the plain files unless a variant is asked for, so those are read, and a variant only where a
component has nothing else. Tokenizers, schedulers and feature extractors have no weights.
Pure reads of a few kB per file; nothing is imported from diffusers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.models.formats import (
    SAFETENSORS_SUFFIX,
    FormatError,
    TensorInfo,
    is_pickle,
    read_safetensors_headers,
)
from modelport.models.task_plan import DiffusionFacts

INDEX_FILE = "model_index.json"
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_DENOISERS = ("unet", "transformer", "prior", "decoder")


class PipelineReadError(ValueError):
    """A diffusers folder that cannot be planned; the message says why."""


@dataclass(frozen=True)
class ComponentWeights:
    name: str
    class_name: str
    tensors: tuple[TensorInfo, ...]
    data_bytes: int


@dataclass(frozen=True)
class PipelineRead:
    components: tuple[ComponentWeights, ...]
    facts: DiffusionFacts
    notes: tuple[str, ...]


def read_pipeline(folder: Path) -> PipelineRead:
    index = _json(folder / INDEX_FILE)
    if index is None:
        raise PipelineReadError(f"{folder}/{INDEX_FILE} cannot be read as a JSON object")
    components: list[ComponentWeights] = []
    notes: list[str] = []
    for name, value in index.items():
        if name.startswith("_") or not _declared(value) or not (folder / name).is_dir():
            continue
        files, note = _weight_files(folder / name)
        if note:
            notes.append(f"{name}: {note}")
        if not files:
            continue
        try:
            tensors, data_bytes = read_safetensors_headers(files)
        except FormatError as exc:
            raise PipelineReadError(f"{exc}; pull the model again") from None
        components.append(ComponentWeights(name, str(value[1]), tuple(tensors), data_bytes))
    if not components:
        raise PipelineReadError(
            f"{folder}: {INDEX_FILE} names no component with safetensors weights in its subfolder "
            f"({', '.join(notes) or 'none found'}); pull the whole model"
        )
    return PipelineRead(tuple(components), _facts(folder, index), tuple(notes))


def _declared(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] is not None and value[1] is not None


def _variant(name: str) -> str | None:
    stem = _SHARD.sub("", name.removesuffix(SAFETENSORS_SUFFIX))
    return stem.rsplit(".", 1)[1] if "." in stem else None


def _weight_files(sub: Path) -> tuple[list[Path], str]:
    names = sorted(p.name for p in sub.iterdir() if p.is_file())
    found = [n for n in names if n.endswith(SAFETENSORS_SUFFIX)]
    plain = [n for n in found if _variant(n) is None]
    if plain:
        return [sub / n for n in plain], ""
    if found:
        variants = sorted({str(_variant(n)) for n in found}, key=lambda v: (v != "fp16", v))
        chosen = variants[0]
        note = f"only {chosen} variant weights (the pipeline loads them with variant={chosen!r})"
        return [sub / n for n in found if _variant(n) == chosen], note
    pickles = [n for n in names if is_pickle(n)]
    return [], (f"only pickle weights ({pickles[0]}), not counted" if pickles else "")


def _facts(folder: Path, index: Mapping[str, Any]) -> DiffusionFacts:
    vae = _json(folder / "vae" / "config.json") or {}
    blocks = vae.get("block_out_channels")
    scale = 2 ** (len(blocks) - 1) if isinstance(blocks, list) and blocks else 8
    channels = vae.get("latent_channels")
    sample = None
    for name in _DENOISERS:
        config = _json(folder / name / "config.json")
        if config is not None:
            sample = _side(config.get("sample_size"))
            break
    return DiffusionFacts(
        pipeline=str(index.get("_class_name") or "diffusers pipeline"),
        native_side=sample * scale if sample else None,
        latent_channels=channels if isinstance(channels, int) and channels > 0 else 4,
        vae_scale=scale,
    )


def _side(value: Any) -> int | None:
    if isinstance(value, list) and value:
        value = max((v for v in value if isinstance(v, int)), default=None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
