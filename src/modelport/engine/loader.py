"""Load a model folder: config.json + safetensors + tokenizer, with safe defaults.

Pickle weights (`*.bin`, `*.pt`, ...) can run code when loaded, so they are refused unless
the operator passes ``allow_pickle``; ``trust_remote_code`` is likewise off unless asked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelport.models.formats import PICKLE_SUFFIXES, pickle_refusal
from modelport.models.hardware import cpu_supports_bf16

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """The folder cannot be served; the message says what to do."""


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return dev


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype != "auto":
        named = {
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
            "float32": torch.float32,
            "fp32": torch.float32,
        }
        if dtype not in named:
            raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32")
        return named[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def pick_exact_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`pick_dtype`, except that "auto" on CPU is float32, not bf16: for models whose answers are
    compared across requests or with float32 references (embeddings, task scores, images)."""
    if dtype == "auto" and device.type == "cpu":
        return torch.float32
    return pick_dtype(dtype, device)


def load_failure(path: Path, exc: Exception, how: str = "") -> ModelLoadError:
    """The error for a `from_pretrained` that raised; `how` ends "cannot load <path>…" (" with X")."""
    if "trust_remote_code" in str(exc):
        return ModelLoadError(
            f"{path} needs custom model code; pass --trust-remote-code only if you trust it"
        )
    return ModelLoadError(f"cannot load {path}{how}: {exc}")


def check_weights(path: Path, allow_pickle: bool) -> bool:
    """Return whether safetensors weights exist; refuse a pickle-only folder unless allowed."""
    if not path.is_dir():
        raise ModelLoadError(f"model folder {path} does not exist")
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path} has no config.json: point modelport at a Hugging Face model folder")
    has_safetensors = any(path.glob("*.safetensors"))
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not has_safetensors and pickles and not allow_pickle:
        raise ModelLoadError(pickle_refusal(str(path), pickles))
    if not has_safetensors and not pickles:
        raise ModelLoadError(f"{path} has no weights (*.safetensors)")
    return has_safetensors


def is_embedding_model(path: Path) -> bool:
    """sentence-transformers folders, or encoders with no causal-LM head."""
    if (path / "modules.json").exists():
        return True
    config = json.loads((path / "config.json").read_text())
    archs: list[str] = config.get("architectures") or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs)
    return not causal and config.get("model_type") in {
        "bert",
        "roberta",
        "xlm-roberta",
        "mpnet",
        "nomic_bert",
        "distilbert",
        "modernbert",
        "new",
        "gte",
    }


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    config: Any
    device: torch.device
    dtype: torch.dtype
    eos_ids: frozenset[int]
    max_model_len: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    weight_bytes: int


def _eos_ids(path: Path, config: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    gen = path / "generation_config.json"
    sources: list[Any] = [getattr(config, "eos_token_id", None), tokenizer.eos_token_id]
    if gen.exists():
        sources.append(json.loads(gen.read_text()).get("eos_token_id"))
    for src in sources:
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, list):
            ids.update(int(x) for x in src)
    return frozenset(ids)


def load_causal_lm(
    path: Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    max_model_len: int | None = None,
) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from modelport.engine import attention, startup

    path = Path(path)
    has_safetensors = check_weights(path, allow_pickle)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    attention.register()  # imports transformers' model machinery: the bulk of the import time
    startup.mark("imports")
    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=torch_dtype,
            attn_implementation=attention.ATTN_IMPLEMENTATION,
            trust_remote_code=trust_remote_code,
            use_safetensors=has_safetensors,
        )
    except ValueError as exc:
        raise load_failure(path, exc) from exc
    model.to(dev)  # type: ignore[arg-type]
    model.eval()  # type: ignore[no-untyped-call]
    startup.mark("weights")
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    num_heads = int(text_config.num_attention_heads)
    head_dim = int(getattr(text_config, "head_dim", None) or text_config.hidden_size // num_heads)
    limit = int(getattr(text_config, "max_position_embeddings", 2048))
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 10**7:
        limit = min(limit, tok_limit)
    window = getattr(text_config, "sliding_window", None)
    if (
        isinstance(window, int)
        and window > 0
        and getattr(text_config, "use_sliding_window", True) is not False
    ):
        # the paged attention here is full attention: within the window the two agree exactly
        if window < limit:
            log.warning(
                "%s uses sliding-window attention; context capped at its window of %d tokens", path, window
            )
        limit = min(limit, window)
    if max_model_len is not None:
        if max_model_len > limit:
            log.warning("--max-model-len %d is above the model's %d positions", max_model_len, limit)
        limit = min(max_model_len, limit) if isinstance(window, int) and window > 0 else max_model_len
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        config=text_config,
        device=dev,
        dtype=torch_dtype,
        eos_ids=_eos_ids(path, text_config, tokenizer),
        max_model_len=limit,
        num_layers=int(text_config.num_hidden_layers),
        num_kv_heads=int(getattr(text_config, "num_key_value_heads", None) or num_heads),
        head_dim=head_dim,
        weight_bytes=weight_bytes,
    )
