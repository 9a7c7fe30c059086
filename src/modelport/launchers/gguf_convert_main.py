"""Run llama.cpp's convert_hf_to_gguf.py from an extracted converter folder, with one fallback.

    python -P -m modelport.launchers.gguf_convert_main CONVERTER_DIR [convert_hf_to_gguf.py args…]

`modelport models convert` starts this in a subprocess; their script and its packages
(`conversion/`, `gguf-py/`) are imported from CONVERTER_DIR, never copied into modelport.

The fallback: for a BPE tokenizer, the converter names llama.cpp's pre-tokenizer (how text is
split before merges) by hashing the tokens of a fixed text, and refuses a hash it does not
know. A self-trained byte-level BPE (modelport's demo and test models) is always unknown,
yet its splitting is exactly GPT-2's when the tokenizer is a lone ByteLevel pre-tokenizer with
its regex, no prefix space and no normalizer, which llama.cpp implements as "gpt-2". Only
that shape falls back, with a warning; any other unknown tokenizer still fails, because a
wrong pre-tokenizer gives a GGUF that loads but tokenizes differently from the original.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT = "convert_hf_to_gguf.py"
# Lines the parent process lifts out of the converter's log and shows to the user.
WARNING_PREFIX = "modelport-warning: "
FALLBACK_PRE_TOKENIZER = "gpt-2"


def is_gpt2_byte_level(spec: dict[str, Any]) -> bool:
    """Whether a tokenizer.json (as a dict) splits text exactly as GPT-2's byte-level BPE does."""
    model = spec.get("model") or {}
    pre = spec.get("pre_tokenizer") or {}
    return (
        model.get("type") == "BPE"
        and spec.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and bool(pre.get("use_regex", True))
        and not pre.get("add_prefix_space", False)
    )


def _tokenizer_spec(tokenizer: Any) -> dict[str, Any] | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)  # transformers' fast tokenizers
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    return spec if isinstance(spec, dict) else None


def _with_fallback(original: Callable[[Any, Any], str]) -> Callable[[Any, Any], str]:
    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            spec = _tokenizer_spec(tokenizer)
            if spec is None or not is_gpt2_byte_level(spec):
                raise
        print(
            f"{WARNING_PREFIX}the tokenizer's BPE pre-tokenizer is not one llama.cpp knows; it is a plain "
            f"byte-level BPE (GPT-2's splitting), so the GGUF uses llama.cpp's {FALLBACK_PRE_TOKENIZER!r} "
            "pre-tokenizer",
            file=sys.stderr,
            flush=True,
        )
        return FALLBACK_PRE_TOKENIZER

    return get_vocab_base_pre


def _pre_tokenizer_owner(script: ModuleType) -> type | None:
    # llama.cpp moved the model classes from the script into a `conversion` package; the lookup
    # is TextModel.get_vocab_base_pre in both layouts (Model before TextModel existed)
    for module in (sys.modules.get("conversion.base"), script):
        for name in ("TextModel", "Model"):
            cls = getattr(module, name, None)
            if isinstance(cls, type) and "get_vocab_base_pre" in vars(cls):
                return cls
    return None


def _load_script(converter: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_hf_to_gguf", converter / SCRIPT)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no {SCRIPT} in {converter}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m modelport.launchers.gguf_convert_main CONVERTER_DIR [ARGS…]")
    converter = Path(argv[0])
    # their script imports `conversion` (next to it) and `gguf` (gguf-py, matched to the script;
    # modelport's own gguf dependency may be older)
    sys.path[:0] = [str(converter / "gguf-py"), str(converter)]
    script = _load_script(converter)
    owner = _pre_tokenizer_owner(script)
    if owner is None:
        print(
            f"{WARNING_PREFIX}no pre-tokenizer lookup found to extend; running the converter as is",
            file=sys.stderr,
        )
    else:
        owner.get_vocab_base_pre = _with_fallback(owner.get_vocab_base_pre)  # type: ignore[attr-defined]
    sys.argv = [str(converter / SCRIPT), *argv[1:]]
    script.main()


if __name__ == "__main__":
    main(sys.argv[1:])
