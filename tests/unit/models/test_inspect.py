"""inspect_model on folders of safetensors headers, GGUF files, pickle-only and config-only folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.models.inspect import (
    SOURCE_CONFIG,
    SOURCE_GGUF,
    SOURCE_SAFETENSORS,
    ModelInspectError,
    inspect_model,
)
from tests.support.model_headers import SMALL_LLAMA, llama_tensors, write_header_only, write_hub_folder
from tests.unit.models.public_models import MODELS

LLAMA_1B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.2-1B")
LLAMA_8B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.1-8B")
SMALL: dict[str, Any] = {
    **SMALL_LLAMA,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}


def test_sharded_headers_give_the_exact_count_and_bytes(tmp_path: Path) -> None:
    total = write_hub_folder(tmp_path, LLAMA_8B.config, llama_tensors(LLAMA_8B.config), shards=4)
    info = inspect_model(tmp_path)
    assert info.parameter_source == SOURCE_SAFETENSORS
    assert info.parameters.total == LLAMA_8B.params
    assert info.checkpoint_bytes == total == LLAMA_8B.checkpoint_bytes
    assert info.checkpoint_scheme == "bf16"
    assert info.parameters.embedding == info.parameters.lm_head == 128256 * 4096
    assert info.notes == ()


def test_the_headers_dtype_wins_over_the_config(tmp_path: Path) -> None:
    write_hub_folder(tmp_path, {**SMALL, "torch_dtype": "bfloat16"}, llama_tensors(SMALL, "F32"))
    info = inspect_model(tmp_path)
    assert info.checkpoint_scheme == "fp32"
    assert any("weight files hold fp32" in n for n in info.notes)


def test_missing_shards_fall_back_to_the_config_and_say_so(tmp_path: Path) -> None:
    write_hub_folder(tmp_path, LLAMA_8B.config, llama_tensors(LLAMA_8B.config), shards=4)
    (tmp_path / "model-00003-of-00004.safetensors").unlink()
    info = inspect_model(tmp_path)
    assert info.parameter_source == SOURCE_CONFIG
    assert info.parameters.total == LLAMA_8B.params
    assert info.checkpoint_bytes is None
    assert any("missing" in n for n in info.notes)


def test_config_only_and_pickle_only_folders_are_counted_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_1B.config))
    info = inspect_model(tmp_path)
    assert (info.parameter_source, info.parameters.total) == (SOURCE_CONFIG, LLAMA_1B.params)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04 not opened")
    info = inspect_model(tmp_path)
    assert info.parameter_source == SOURCE_CONFIG
    assert any("pickle" in n and "not opened" in n for n in info.notes)


def test_awq_checkpoint_counts_unpacked_parameters(tmp_path: Path) -> None:
    config = {**SMALL, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 32}}
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, (_, shape) in llama_tensors(SMALL, "F16").items():
        if name.startswith("model.layers.") and len(shape) == 2:
            out, inp = shape
            stem = name.removesuffix(".weight")
            tensors[stem + ".qweight"] = ("I32", (inp, out // 8))
            tensors[stem + ".qzeros"] = ("I32", (inp // 32, out // 8))
            tensors[stem + ".scales"] = ("F16", (inp // 32, out))
        else:
            tensors[name] = ("F16", shape)
    write_hub_folder(tmp_path, config, tensors)
    info = inspect_model(tmp_path)
    plain = inspect_model(_plain(tmp_path.parent / "plain"))
    assert info.checkpoint_scheme == "awq"
    assert info.parameters.total == plain.parameters.total


def _plain(folder: Path) -> Path:
    write_hub_folder(folder, SMALL, llama_tensors(SMALL, "F32"))
    return folder


def test_moe_experts_are_classified_from_tensor_names(tmp_path: Path) -> None:
    config = {**SMALL, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, spec in llama_tensors(SMALL).items():
        if ".mlp." in name:
            for e in range(4):
                tensors[name.replace(".mlp.", f".block_sparse_moe.experts.{e}.")] = spec
        else:
            tensors[name] = spec
    write_hub_folder(tmp_path, config, tensors)
    info = inspect_model(tmp_path)
    expert = 2 * 4 * 3 * 64 * 128
    assert info.parameters.expert == expert
    assert info.parameters.total - info.parameters.active == expert // 2


def _write_gguf(path: Path, *, split: bool = False) -> int:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_token_list([f"t{i}" for i in range(256)])
    params = 0
    shapes = {"token_embd.weight": (256, 64), "output_norm.weight": (64,), "output.weight": (256, 64)}
    for n in range(2):
        shapes |= {
            f"blk.{n}.attn_q.weight": (64, 64),
            f"blk.{n}.attn_k.weight": (32, 64),
            f"blk.{n}.attn_v.weight": (32, 64),
            f"blk.{n}.attn_output.weight": (64, 64),
            f"blk.{n}.ffn_gate.weight": (128, 64),
            f"blk.{n}.ffn_up.weight": (128, 64),
            f"blk.{n}.ffn_down.weight": (64, 128),
            f"blk.{n}.attn_norm.weight": (64,),
            f"blk.{n}.ffn_norm.weight": (64,),
        }
    for name, shape in shapes.items():
        data = np.ones(shape, dtype=np.float32)
        params += data.size
        if len(shape) == 2:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return params


def test_gguf_file_gives_facts_count_and_file_type(tmp_path: Path) -> None:
    path = tmp_path / "small-Q8_0.gguf"
    params = _write_gguf(path)
    info = inspect_model(path)
    assert info.parameter_source == SOURCE_GGUF
    assert info.parameters.total == params
    assert info.checkpoint_scheme == "gguf-q8_0"
    facts = info.facts
    assert (facts.model_type, facts.num_layers, facts.hidden_size) == ("llama", 2, 64)
    assert (facts.num_attention_heads, facts.num_kv_heads, facts.head_dim) == (4, 2, 16)
    assert (facts.vocab_size, facts.max_position_embeddings, facts.tie_word_embeddings) == (256, 4096, False)
    matrices = params - 5 * 64
    assert info.checkpoint_bytes == matrices * 34 // 32 + 5 * 64 * 4  # Q8_0 blocks, F32 norms
    assert inspect_model(tmp_path).parameters.total == params  # a folder holding one .gguf file


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelInspectError, match="does not exist"):
        inspect_model(tmp_path / "nope")
    with pytest.raises(ModelInspectError, match=r"no config\.json"):
        inspect_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelInspectError, match="num_hidden_layers"):
        inspect_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ModelInspectError, match="pull the model again"):
        inspect_model(tmp_path)


def test_several_gguf_files_ask_which(tmp_path: Path) -> None:
    for name in ("a-Q8_0.gguf", "a-Q4_K_M.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(ModelInspectError, match="several GGUF files"):
        inspect_model(tmp_path)


def test_adapters_and_consolidated_copies_are_not_counted(tmp_path: Path) -> None:
    write_hub_folder(tmp_path, SMALL, llama_tensors(SMALL, "F32"))
    write_header_only(tmp_path / "consolidated.safetensors", llama_tensors(SMALL, "F32"))
    write_header_only(tmp_path / "adapter_model.safetensors", {"lora_A": ("F32", (8, 64))})
    info = inspect_model(tmp_path)
    assert info.checkpoint_bytes == 4 * info.parameters.total
