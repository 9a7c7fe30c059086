"""Bytes per parameter of each scheme, checked against the tensor layouts they stand for."""

from __future__ import annotations

import pytest

from modelport.models.inspect import info_from_config
from modelport.models.planner import weights_bytes
from modelport.models.quantization import SCHEMES, kv_dtype_bytes, resolve_scheme
from tests.unit.models.public_models import MODELS

LLAMA_8B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.1-8B")


def _awq_layout_bytes() -> int:
    """Llama-3.1-8B as AutoAWQ writes it (group 128): per linear of in × out, qweight int32
    [in, out/8], qzeros int32 [in/128, out/8], scales fp16 [in/128, out]; embeddings, LM head
    and norms bf16."""
    h, i, kv, layers, vocab = 4096, 14336, 1024, 32, 128256
    linears = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]
    per_layer = sum(4 * a * b // 8 + 4 * (a // 128) * (b // 8) + 2 * (a // 128) * b for a, b in linears)
    return layers * per_layer + 2 * (2 * vocab * h) + 2 * (layers * 2 * h + h)


def test_awq_bits_reproduce_the_awq_tensor_layout_exactly() -> None:
    info = info_from_config(LLAMA_8B.config)
    assert weights_bytes(info, SCHEMES["awq"]) == _awq_layout_bytes()
    assert round(_awq_layout_bytes() / 1e9, 2) == 5.73


def test_fp8_halves_the_linears_and_keeps_embeddings_16_bit() -> None:
    info = info_from_config(LLAMA_8B.config)
    p = info.parameters
    assert weights_bytes(info, SCHEMES["fp8"]) == p.linear + 2 * (p.embedding + p.lm_head + p.vector)


def test_gguf_block_formats() -> None:
    assert SCHEMES["gguf-q8_0"].linear_bits == 34 * 8 / 32
    assert SCHEMES["gguf-q4_0"].linear_bits == 18 * 8 / 32


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("Q4_K_M", "gguf-q4_k_m"),
        ("bfloat16", "bf16"),
        ("half", "fp16"),
        ("int4", "awq"),
        ("q8_0", "gguf-q8_0"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert resolve_scheme(alias).name == name


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="awq"):
        resolve_scheme("int3")


def test_kv_cache_dtype_bytes() -> None:
    assert kv_dtype_bytes("auto", SCHEMES["bf16"]) == 2
    assert kv_dtype_bytes("auto", SCHEMES["awq"]) == 2
    assert kv_dtype_bytes("auto", SCHEMES["fp32"]) == 4
    assert kv_dtype_bytes("fp8", SCHEMES["bf16"]) == 1
