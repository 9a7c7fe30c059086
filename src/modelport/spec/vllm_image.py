"""What the `model.image.vllm` settings and model.args may say to vLLM (pure: no launch here).

The launcher (launchers/vllm.py) and the spec's validation (spec/engine_image.py) both read these,
so a refused setting is refused at create time, before anything starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# flags modelport sets itself: a user's model.args may not move vLLM off its model, address or name
OWNED = frozenset({"--model", "--host", "--port", "--served-model-name", "--uds"})
ALIASES = {
    "-tp": "--tensor-parallel-size",
    "-q": "--quantization",
    "-sc": "--speculative-config",
    "--device-memory-utilization": "--gpu-memory-utilization",
}


def sleep_mode(config: Mapping[str, Any]) -> bool:
    value = config.get("sleepMode", False)
    if not isinstance(value, bool):
        raise ValueError(f"image.vllm.sleepMode must be true or false, not {value!r}")
    return value


def image_flags(config: Mapping[str, Any]) -> list[str]:
    """vLLM flags for the `model.image.vllm` settings."""
    flags = ["--enable-sleep-mode"] if sleep_mode(config) else []
    draft, tokens = config.get("speculativeModel"), config.get("numSpeculativeTokens")
    if draft is None and tokens is None:
        return flags
    if not isinstance(draft, str) or not draft:
        raise ValueError("image.vllm.speculativeModel must name a draft model (a path, or ngram)")
    speculative: dict[str, Any] = {"model": draft}
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError(f"image.vllm.numSpeculativeTokens must be a positive integer, not {tokens!r}")
        speculative["num_speculative_tokens"] = tokens
    return [*flags, "--speculative-config", json.dumps(speculative)]
