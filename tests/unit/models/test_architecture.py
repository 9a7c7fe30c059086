"""Parameter counts and KV-cache sizes from config.json, against published figures."""

from __future__ import annotations

import pytest

from modelport.models.architecture import (
    ArchitectureError,
    facts_from_config,
    kv_bytes_for_context,
    kv_bytes_per_token,
    parameter_count,
)
from modelport.models.inspect import info_from_config
from modelport.models.planner import weights_bytes
from modelport.models.quantization import SCHEMES
from tests.unit.models.public_models import MODELS, PublicModel

BY_NAME = {m.name.split("/")[1]: m for m in MODELS}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_parameter_count_matches_the_published_count(model: PublicModel) -> None:
    count = parameter_count(facts_from_config(model.config)).total
    assert abs(count - model.params) <= 0.02 * model.params
    if model.exact:  # the formula is not merely close: every tensor is accounted for
        assert count == model.params


@pytest.mark.parametrize("model", [m for m in MODELS if m.checkpoint_bytes], ids=lambda m: m.name)
def test_weights_bytes_within_two_percent_of_the_checkpoint(model: PublicModel) -> None:
    info = info_from_config(model.config)
    assert info.checkpoint_scheme == "bf16"
    assert model.checkpoint_bytes is not None
    planned = weights_bytes(info, SCHEMES["bf16"])
    assert abs(planned - model.checkpoint_bytes) <= 0.02 * model.checkpoint_bytes


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_kv_bytes_per_token_is_exact(model: PublicModel) -> None:
    assert kv_bytes_per_token(facts_from_config(model.config), 2) == model.kv_bytes_per_token


@pytest.mark.parametrize("model", [m for m in MODELS if m.active_params], ids=lambda m: m.name)
def test_moe_active_parameters_match_the_published_figure(model: PublicModel) -> None:
    assert model.active_params is not None
    active = parameter_count(facts_from_config(model.config)).active
    assert abs(active - model.active_params) <= 0.02 * model.active_params


def test_mixtral_counts_two_of_eight_experts_as_active() -> None:
    count = parameter_count(facts_from_config(BY_NAME["Mixtral-8x7B-v0.1"].config))
    one_expert = 3 * 4096 * 14336
    assert count.expert == 32 * 8 * one_expert
    assert count.total - count.active == 32 * 6 * one_expert


def test_attention_kinds() -> None:
    kinds = {name: facts_from_config(m.config).attention_kind for name, m in BY_NAME.items()}
    assert kinds["Llama-3.1-8B"] == "GQA"
    assert kinds["gemma-3-1b-it"] == "MQA"
    assert kinds["Phi-3-mini-4k-instruct"] == "MHA"
    assert kinds["DeepSeek-V2-Lite"] == "MLA"


def test_sliding_window_layers_follow_each_family() -> None:
    mistral = facts_from_config(BY_NAME["Mistral-7B-v0.1"].config)
    assert mistral.layer_windows == (4096,) * 32
    gemma2 = facts_from_config(BY_NAME["gemma-2-9b"].config)
    assert gemma2.layer_windows == (4096, None) * 21  # even layers slide
    gemma3 = facts_from_config(BY_NAME["gemma-3-1b-it"].config)
    assert [i for i, w in enumerate(gemma3.layer_windows) if w is None] == [5, 11, 17, 23]
    qwen = facts_from_config(BY_NAME["Qwen2.5-7B"].config)  # sliding_window set, use_sliding_window false
    assert qwen.sliding_window is None and qwen.sliding_layers == 0
    qwen_sliding = facts_from_config(
        {**BY_NAME["Qwen2.5-7B"].config, "use_sliding_window": True, "max_window_layers": 20}
    )
    assert qwen_sliding.layer_windows == (None,) * 20 + (131072,) * 8


def test_layer_types_override_the_family_rule() -> None:
    config = {
        **BY_NAME["Mistral-7B-v0.1"].config,
        "layer_types": ["full_attention", "sliding_attention"] * 16,
    }
    assert facts_from_config(config).layer_windows == (None, 4096) * 16


def test_kv_for_a_context_caps_sliding_layers_at_the_window() -> None:
    gemma2 = facts_from_config(BY_NAME["gemma-2-9b"].config)
    per_layer_token = 8 * 256 * 2 * 2
    assert kv_bytes_for_context(gemma2, 8192, 2) == 21 * 8192 * per_layer_token + 21 * 4096 * per_layer_token
    assert kv_bytes_for_context(gemma2, 1000, 2) == 42 * 1000 * per_layer_token
    mistral = facts_from_config(BY_NAME["Mistral-7B-v0.1"].config)
    assert kv_bytes_for_context(mistral, 32768, 2) == 4096 * 131072
    llama = facts_from_config(BY_NAME["Llama-3.1-8B"].config)
    assert kv_bytes_for_context(llama, 8192, 1) == 8192 * 65536  # fp8 cache: one byte per element


def test_tensor_parallel_splits_kv_heads_and_replicates_them_past_their_number() -> None:
    qwen = facts_from_config(BY_NAME["Qwen2.5-7B"].config)  # 4 KV heads
    assert kv_bytes_per_token(qwen, 2, tensor_parallel=2) == 28 * 2 * 128 * 2 * 2
    assert kv_bytes_per_token(qwen, 2, tensor_parallel=8) == 28 * 1 * 128 * 2 * 2  # replicated


def test_mla_latent_is_not_split_by_tensor_parallel() -> None:
    lite = facts_from_config(BY_NAME["DeepSeek-V2-Lite"].config)
    assert kv_bytes_per_token(lite, 2, tensor_parallel=4) == kv_bytes_per_token(lite, 2) == 31104


def test_moe_layer_placement() -> None:
    v3 = facts_from_config(BY_NAME["DeepSeek-V3"].config)
    assert v3.moe is not None and v3.moe.moe_layers == tuple(range(3, 61))
    assert v3.moe.router_bias and v3.mtp_layers == 1
    qwen_moe = facts_from_config({**BY_NAME["Qwen1.5-MoE-A2.7B"].config, "mlp_only_layers": [0, 1]})
    assert qwen_moe.moe is not None and qwen_moe.moe.moe_layers == tuple(range(2, 24))


def test_quantization_configs() -> None:
    base = BY_NAME["Llama-3.1-8B"].config
    awq = facts_from_config(
        {**base, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    )
    assert awq.quantization is not None and awq.quantization.scheme == "awq"
    gptq8 = facts_from_config({**base, "quantization_config": {"quant_method": "gptq", "bits": 8}})
    assert gptq8.quantization is not None and gptq8.quantization.scheme == "int8"
    w8a8 = {
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int"}}},
    }
    ct = facts_from_config({**base, "quantization_config": w8a8})
    assert ct.quantization is not None and ct.quantization.scheme == "int8"
    assert facts_from_config(BY_NAME["DeepSeek-V3"].config).quantization.scheme == "fp8"  # type: ignore[union-attr]


def test_multimodal_configs_use_their_text_config() -> None:
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {**BY_NAME["gemma-3-1b-it"].config, "model_type": "gemma3_text"},
        "vision_config": {"hidden_size": 1152},
    }
    facts = facts_from_config(config)
    assert facts.architecture == "Gemma3ForConditionalGeneration"
    assert facts.num_layers == 26 and facts.num_kv_heads == 1


def test_unknown_model_type_is_counted_as_llama_shaped() -> None:
    facts = facts_from_config({**BY_NAME["Llama-3.1-8B"].config, "model_type": "granite"})
    assert not facts.known
    assert parameter_count(facts).total == 8_030_261_248


def test_a_config_without_the_size_keys_is_refused() -> None:
    with pytest.raises(ArchitectureError, match="num_hidden_layers"):
        facts_from_config({"model_type": "llama", "hidden_size": 4096})
