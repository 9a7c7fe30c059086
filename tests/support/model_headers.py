"""Hub-shaped model folders with no weights: config.json and safetensors files cut after the header.

A header names every tensor with its dtype, shape and byte range, which is all `inspect_model`
reads; the data itself is never written, so a 141 GB Llama-3.1-70B folder takes a few kB.
Also a small GGUF writer (whole files: GGUF readers map the tensor data).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.models.formats import DTYPE_BYTES

Tensors = dict[str, tuple[str, tuple[int, ...]]]

# A two-layer Llama small enough to reason about by hand (GQA 4/2 heads of 16).
SMALL_LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}


def llama_tensors(config: Mapping[str, Any], dtype: str = "BF16") -> Tensors:
    """Every tensor of a Llama-architecture checkpoint, named as transformers saves them."""
    h, i = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or h // heads
    vocab = config["vocab_size"]
    tensors: Tensors = {"model.embed_tokens.weight": (dtype, (vocab, h))}
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        tensors[p + "self_attn.q_proj.weight"] = (dtype, (heads * d, h))
        tensors[p + "self_attn.k_proj.weight"] = (dtype, (kv * d, h))
        tensors[p + "self_attn.v_proj.weight"] = (dtype, (kv * d, h))
        tensors[p + "self_attn.o_proj.weight"] = (dtype, (h, heads * d))
        tensors[p + "mlp.gate_proj.weight"] = (dtype, (i, h))
        tensors[p + "mlp.up_proj.weight"] = (dtype, (i, h))
        tensors[p + "mlp.down_proj.weight"] = (dtype, (h, i))
        tensors[p + "input_layernorm.weight"] = (dtype, (h,))
        tensors[p + "post_attention_layernorm.weight"] = (dtype, (h,))
    tensors["model.norm.weight"] = (dtype, (h,))
    if not config.get("tie_word_embeddings", False):
        tensors["lm_head.weight"] = (dtype, (vocab, h))
    return tensors


def _nbytes(dtype: str, shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return int(count * DTYPE_BYTES[dtype])


def write_header_only(path: Path, tensors: Mapping[str, tuple[str, Sequence[int]]]) -> int:
    """A safetensors file holding only its header; returns the data bytes the header describes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = _nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return offset


def write_hub_folder(folder: Path, config: Mapping[str, Any], tensors: Tensors, shards: int = 1) -> int:
    """config.json, `shards` header-only files named as the Hub names them, and, when sharded,
    model.safetensors.index.json. Returns the total tensor bytes (the index's total_size)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(dict(config), indent=2))
    names = list(tensors)
    per_shard = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    total = 0
    for s in range(shards):
        chunk = names[s * per_shard : (s + 1) * per_shard]
        file = "model.safetensors" if shards == 1 else f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        total += write_header_only(folder / file, {n: tensors[n] for n in chunk})
        weight_map.update(dict.fromkeys(chunk, file))
    if shards > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return total


def write_gguf(path: Path, tokens: int = 256, split_max_tensors: int = 0, pad: int = 0) -> None:
    """A small Llama GGUF file (F32 tensors of ones); `pad` lengthens every token, `split_max_tensors`
    writes path-0000i-of-0000n.gguf shards instead."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    writer.add_block_count(1)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_token_list([f"token-{i}" + "x" * pad for i in range(tokens)])
    shapes = {"token_embd.weight": (tokens, 64), "output_norm.weight": (64,), "output.weight": (tokens, 64)}
    for name in ("attn_q", "attn_output"):
        shapes[f"blk.0.{name}.weight"] = (64, 64)
    for name in ("attn_k", "attn_v"):
        shapes[f"blk.0.{name}.weight"] = (32, 64)
    shapes |= {"blk.0.ffn_gate.weight": (128, 64), "blk.0.ffn_up.weight": (128, 64)}
    shapes |= {"blk.0.ffn_down.weight": (64, 128), "blk.0.attn_norm.weight": (64,)}
    shapes["blk.0.ffn_norm.weight"] = (64,)
    for name, shape in shapes.items():
        writer.add_tensor(name, np.ones(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
