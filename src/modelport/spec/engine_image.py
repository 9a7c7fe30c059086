"""`model.image.vllm` and `model.image.llamacpp`: the settings each accepts (checked when written)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelport.spec import vllm_image
from modelport.spec.engine_flags import LLAMACPP_OWNED, check_owned

# camelCase as on the wire; what each setting does is in launchers/vllm.py and llamacpp.py
SETTINGS = {
    "vllm": frozenset({"enginePython", "sleepMode", "speculativeModel", "numSpeculativeTokens"}),
    "llamacpp": frozenset({"enginePython"}),
}


def check_engine_image(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    known = SETTINGS[kind]
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"image.{kind} has no setting {', '.join(unknown)}; known: {', '.join(sorted(known))} "
            "(engine flags go in model.args)"
        )
    python = config.get("enginePython")
    if python is not None and (not isinstance(python, str) or not python.startswith("/")):
        raise ValueError(f"image.{kind}.enginePython must be an absolute path to a python interpreter")
    if kind == "vllm":
        vllm_image.image_flags(config)  # raises with the setting's problem
    return dict(config)


def check_engine_model(kind: str, repository: str, args: list[str]) -> None:
    """llama.cpp loads one GGUF file, the transformers engines load model folders; and a user's
    args must not move an engine off the model, address or name modelport gives it."""
    gguf = repository.lower().endswith(".gguf")
    if kind == "llamacpp" and not gguf:
        raise ValueError(
            f"llama.cpp serves a single GGUF file and {repository} is not one: give a .gguf path, a Hub "
            "file (org/name/file.gguf), or convert a folder with `modelport models convert DIR --to gguf`"
        )
    if kind in ("huggingface", "vllm") and gguf:
        engine = "the builtin engine" if kind == "huggingface" else "vLLM"
        raise ValueError(
            f"{repository} is a GGUF file: {engine} serves transformers model folders; "
            'serve it with {"llamacpp": {}} as model.image'
        )
    if kind == "vllm":
        check_owned("vLLM", args, vllm_image.OWNED, vllm_image.ALIASES)
    elif kind == "llamacpp":
        check_owned("llama.cpp", args, LLAMACPP_OWNED, {})
