"""Bytes per parameter of each weight format the planner knows, and what engines call them.

A checkpoint's bytes are not ``parameters × bits / 8`` for every tensor alike: engines quantize
the linear layers of the transformer blocks and keep the token embedding, the LM head and the
1-D tensors (norms, biases) in 16-bit. So a `Scheme` gives bits for the block linears (scales
and zero points included) and for the embedding/LM head separately.

Assumptions, stated once:
- AWQ and GPTQ int4, group size 128: 4-bit weights packed in int32, one fp16 scale and one
  4-bit zero point per 128 weights of a column, so 4 + (16 + 4) / 128 = 4.156 bits per weight.
  Embeddings and LM head stay 16-bit (what AutoAWQ and GPTQModel write). Llama-3.1-8B in this
  layout is 5.73 GB, the size of the published AWQ-INT4 checkpoints.
- FP8 and INT8: one byte per weight plus a per-tensor or per-channel scale (negligible);
  embeddings and LM head stay 16-bit, as vLLM's online `--quantization fp8` leaves them.
- GGUF: llama.cpp quantizes the embedding and output matrices too, and keeps 1-D tensors in
  F32. Q8_0 and Q4_0 are exact block formats (34 and 18 bytes per 32 weights: 8.5 and 4.5
  bits). Q4_K_M mixes Q4_K (4.5 bits) with Q6_K (6.56 bits) for some attention-V and FFN-down
  tensors and the output matrix; 4.84 bits is its file average for Llama-2-7B in llama.cpp's
  `tools/quantize/README.md`. For a real GGUF file the planner uses the file's exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    name: str
    label: str
    linear_bits: float  # per weight of the block linears, scales and zero points included
    embedding_bits: float  # token embedding and LM head
    vector_bytes: int  # per element of norms and biases
    compute_bytes: int  # activations and the KV cache at kv_cache_dtype=auto
    vllm_quantization: str | None  # vLLM's name of the format (it reads it from a checkpoint's config)
    online: bool = False  # vLLM can quantize a 16-bit checkpoint to it at load (`--quantization`)
    builtin_dtype: str | None = None  # modelport's builtin engine `--dtype`; None: it cannot serve this
    gguf: bool = False
    min_compute_capability: float = 0.0  # oldest NVIDIA GPU generation with vLLM kernels for it
    note: str = ""

    @property
    def float_weights(self) -> bool:
        """bf16, fp16 or fp32: any such checkpoint can be loaded in any of the three."""
        return self.builtin_dtype is not None


_INT4_GROUP_BITS = 4 + (16 + 4) / 128

SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("bf16", "bf16", 16, 16, 2, 2, None, builtin_dtype="bfloat16"),
        Scheme("fp16", "fp16", 16, 16, 2, 2, None, builtin_dtype="float16"),
        Scheme("fp32", "fp32", 32, 32, 4, 4, None, builtin_dtype="float32"),
        Scheme(
            "fp8",
            "FP8",
            8,
            16,
            2,
            2,
            "fp8",
            online=True,
            min_compute_capability=8.0,
            note="native FP8 tensor cores from Ada/Hopper; weight-only FP8 (Marlin) on Ampere",
        ),
        Scheme(
            "int8",
            "INT8 (W8A8)",
            8,
            16,
            2,
            2,
            "compressed-tensors",
            min_compute_capability=7.5,
            note="needs an INT8 checkpoint (e.g. llm-compressor W8A8); vLLM has no online INT8",
        ),
        Scheme(
            "awq",
            "AWQ int4",
            _INT4_GROUP_BITS,
            16,
            2,
            2,
            "awq",
            min_compute_capability=7.5,
            note="needs an AWQ checkpoint; vLLM picks the awq_marlin kernels on Ampere and newer",
        ),
        Scheme(
            "gptq",
            "GPTQ int4",
            _INT4_GROUP_BITS,
            16,
            2,
            2,
            "gptq",
            min_compute_capability=6.0,
            note="needs a GPTQ checkpoint; vLLM picks the gptq_marlin kernels on Ampere and newer",
        ),
        Scheme("gguf-q8_0", "GGUF Q8_0", 8.5, 8.5, 4, 2, "gguf", gguf=True, min_compute_capability=6.0),
        Scheme("gguf-q4_k_m", "GGUF Q4_K_M", 4.84, 4.84, 4, 2, "gguf", gguf=True, min_compute_capability=6.0),
        Scheme("gguf-q4_0", "GGUF Q4_0", 4.5, 4.5, 4, 2, "gguf", gguf=True, min_compute_capability=6.0),
        Scheme("gguf-f16", "GGUF F16", 16, 16, 4, 2, "gguf", gguf=True, min_compute_capability=6.0),
    )
}

ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "fp8_e4m3": "fp8",
    "w8a8": "int8",
    "int4": "awq",
    "awq-int4": "awq",
    "gptq-int4": "gptq",
    "q8_0": "gguf-q8_0",
    "q4_k_m": "gguf-q4_k_m",
    "q4_0": "gguf-q4_0",
    "f16": "gguf-f16",
}

KV_CACHE_DTYPES = ("auto", "fp8")


def resolve_scheme(name: str) -> Scheme:
    """A scheme by its name or an alias, case-insensitive (`Q4_K_M`, `bfloat16`, `awq`)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in SCHEMES:
        raise ValueError(f"unknown quantization {name!r}; use one of {', '.join(SCHEMES)}")
    return SCHEMES[key]


def gguf_scheme(name: str, bits: float) -> Scheme:
    """A GGUF file type the table does not list (Q5_K_M, IQ4_XS...), at the file's own average bits."""
    return Scheme(name, name.upper().replace("GGUF-", "GGUF "), bits, bits, 4, 2, "gguf", gguf=True)


def kv_dtype_bytes(kv_cache_dtype: str, scheme: Scheme) -> int:
    """Bytes per KV element: `auto` is the activation dtype (16-bit for every quantized format)."""
    if kv_cache_dtype == "fp8":
        return 1
    if kv_cache_dtype == "auto":
        return scheme.compute_bytes
    raise ValueError(f"unknown kv cache dtype {kv_cache_dtype!r}; use {' or '.join(KV_CACHE_DTYPES)}")


def scheme_for_dtype(dtype: str) -> str | None:
    """The scheme of an unquantized checkpoint from a torch or safetensors dtype name."""
    return {
        "bfloat16": "bf16",
        "bf16": "bf16",
        "float16": "fp16",
        "fp16": "fp16",
        "f16": "fp16",
        "float32": "fp32",
        "fp32": "fp32",
        "f32": "fp32",
        "f8_e4m3": "fp8",
        "float8_e4m3fn": "fp8",
    }.get(dtype.lower())
