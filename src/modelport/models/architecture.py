"""What a model's config.json says about its size: parameters, and KV-cache bytes per token.

`facts_from_config` reads a Hugging Face config into `ModelFacts`; everything else here is a
pure function of those facts. Nothing is loaded and nothing is guessed from file names.

Parameters (per decoder layer, h = hidden size, d = head dim, n = attention heads,
g = KV heads, i = MLP intermediate size):
- attention: q and o are ``h × n·d`` each, k and v ``h × g·d`` each; Qwen2 adds q/k/v biases,
  Qwen3 and Gemma-3 a q-norm and a k-norm of d each.
- MLA (DeepSeek-V2/V3; r = kv_lora_rank, p = qk_rope_head_dim, c = qk_nope_head_dim,
  v = v_head_dim, q' = q_lora_rank): q is ``h × n(c+p)`` or, with a q LoRA, ``h × q' + q'``
  (its norm) ``+ q' × n(c+p)``; kv_a is ``h × (r+p)`` plus a norm of r; kv_b ``r × n(c+v)``;
  o ``n·v × h``.
- MLP: gated (gate, up, down), ``3 × h × i``.
- MoE layers: E experts of ``3 × h × i_e`` each, a router ``h × E``, shared experts
  ``3 × h × i_s`` (Qwen2-MoE also a 1-output shared-expert gate, DeepSeek-V3 a router bias of E).
  Which layers have experts: every layer (Mixtral), every `decoder_sparse_step`-th outside
  `mlp_only_layers` (Qwen-MoE), or from `first_k_dense_replace` on, every `moe_layer_freq`-th
  (DeepSeek). The rest have a dense MLP.
- norms: 2 × h per layer (4 × h for Gemma-2/3), one final norm of h.
- embedding ``V × h``; the LM head another ``V × h`` unless `tie_word_embeddings`.
Active parameters per token count the k routed experts a token goes to instead of all E.
DeepSeek-V3's multi-token-prediction layers (`num_nextn_predict_layers`) ship in the
checkpoint but are not loaded for plain decoding, so they are not counted here.

KV cache, bytes per token (b = bytes per element of the cache dtype, L layers):
- standard attention (MHA, GQA, MQA alike): ``L × g × d × 2 (K and V) × b``;
- MLA: ``L × (r + p) × b`` — the compressed latent and the shared rope key, which is what
  vLLM caches (one copy, no separate K and V);
- a sliding-window layer holds at most `window` tokens, so for a context C it costs
  ``min(C, window)`` tokens: Mistral-7B-v0.1 slides on every layer, Gemma-2 on every other
  layer, Gemma-3 on 5 of 6, Qwen2 only with `use_sliding_window` and from `max_window_layers`
  on, and a config's `layer_types` list overrides all of these.
With tensor parallelism over t GPUs each GPU holds ``ceil(g / t)`` KV heads (heads are
replicated when t > g); MLA's latent is replicated on every GPU.

Task models that are not LLMs (encoders, encoder-decoders) are described by `towers_from_config`
instead: one `Tower` per transformer stack (a text, vision or audio encoder, a decoder), with the
most positions one input has there (text tokens, image patches plus the class token, audio
frames). Their parameters come from the weight headers, not from a formula.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# model_type -> the formula family; others get the Llama-shaped formula and `known=False`
KNOWN_MODEL_TYPES = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi3",
        "deepseek_v2",
        "deepseek_v3",
    }
)
_QWEN = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")


class ArchitectureError(ValueError):
    """A config.json lacks what the size of the model follows from; the message names the keys."""


@dataclass(frozen=True)
class MoEFacts:
    num_experts: int  # routed experts per MoE layer
    experts_per_token: int
    expert_intermediate_size: int
    shared_intermediate_size: int  # all shared experts together; 0 when none
    moe_layers: tuple[int, ...]  # indices of the layers with experts
    shared_expert_gate: bool = False  # Qwen2-MoE: a 1-output gate on the shared expert
    router_bias: bool = False  # DeepSeek-V3: e_score_correction_bias


@dataclass(frozen=True)
class MLAFacts:
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None


@dataclass(frozen=True)
class QuantizationConfig:
    method: str  # quant_method as written: awq, gptq, fp8, compressed-tensors, bitsandbytes...
    bits: int | None
    group_size: int | None
    scheme: str | None  # the planner's scheme (awq, gptq, fp8, int8); None when it has none


@dataclass(frozen=True)
class ModelFacts:
    architecture: str  # e.g. LlamaForCausalLM
    model_type: str  # e.g. llama
    num_layers: int
    hidden_size: int
    intermediate_size: int  # of the dense MLP
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    sliding_window: int | None
    layer_windows: tuple[int | None, ...]  # per layer: its window, None for full attention
    moe: MoEFacts | None = None
    mla: MLAFacts | None = None
    dtype: str | None = None  # the checkpoint dtype the config names (torch_dtype / dtype)
    quantization: QuantizationConfig | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    mtp_layers: int = 0  # DeepSeek-V3 multi-token-prediction layers (in the checkpoint, not loaded)
    known: bool = True  # False: no formula of its own; counted as a Llama-shaped model

    @property
    def attention_kind(self) -> str:
        if self.mla is not None:
            return "MLA"
        if self.num_kv_heads == 1:
            return "MQA"
        if self.num_kv_heads < self.num_attention_heads:
            return "GQA"
        return "MHA"

    @property
    def sliding_layers(self) -> int:
        return sum(1 for w in self.layer_windows if w is not None)


@dataclass(frozen=True)
class ParamCount:
    total: int
    active: int  # per token: the routed experts a token uses instead of all of them
    embedding: int  # the input token embedding
    lm_head: int  # 0 when tied to the embedding
    vector: int  # 1-D tensors: norms and biases
    expert: int  # routed-expert weights (part of total)

    @property
    def linear(self) -> int:
        """The block linears (experts included): what weight quantization applies to."""
        return self.total - self.embedding - self.lm_head - self.vector


def _int(config: Mapping[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if default is not None:
        return default
    raise ArchitectureError(f"config.json has no {' / '.join(keys)}; the model's size cannot be worked out")


def _optional_int(config: Mapping[str, Any], key: str) -> int | None:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def text_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The language model's config: multimodal configs nest it under `text_config`."""
    nested = config.get("text_config")
    if isinstance(nested, Mapping):
        merged = {k: v for k, v in config.items() if k != "text_config"}
        merged.update(nested)
        return merged
    return dict(config)


def facts_from_config(config: Mapping[str, Any]) -> ModelFacts:
    """Read a config.json (as a dict) into `ModelFacts`. Raises `ArchitectureError`."""
    outer_archs = config.get("architectures")
    cfg = text_config(config)
    model_type = str(cfg.get("model_type") or config.get("model_type") or "")
    if model_type == "gemma3":  # a text-only Gemma-3 config written with the multimodal type
        model_type = "gemma3_text"
    archs = outer_archs if isinstance(outer_archs, list) and outer_archs else cfg.get("architectures")
    architecture = str(archs[0]) if isinstance(archs, list) and archs else model_type or "unknown"
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    heads = _int(cfg, "num_attention_heads", "n_head")
    vocab = _int(cfg, "vocab_size")
    if cfg.get("multi_query") is True:
        kv_heads = 1
    else:
        kv_heads = _int(cfg, "num_key_value_heads", "num_kv_heads", default=heads)
    head_dim = _optional_int(cfg, "head_dim") or hidden // heads
    intermediate = _int(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    max_pos = _int(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", default=2048)
    tie = cfg.get("tie_word_embeddings")
    if not isinstance(tie, bool):
        tie = model_type in ("gemma", "gemma2", "gemma3_text")  # their configs default to tied
    mla = _mla(cfg)
    window, windows = _layer_windows(cfg, model_type, layers)
    return ModelFacts(
        architecture=architecture,
        model_type=model_type,
        num_layers=layers,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_position_embeddings=max_pos,
        sliding_window=window,
        layer_windows=windows,
        moe=_moe(cfg, model_type, layers, intermediate),
        mla=mla,
        dtype=_dtype(config, cfg),
        quantization=_quantization(config.get("quantization_config") or cfg.get("quantization_config")),
        qkv_bias=model_type in ("qwen2", "qwen2_moe") or cfg.get("attention_bias") is True,
        o_bias=cfg.get("attention_bias") is True and model_type not in _QWEN,
        qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3_text"),
        norms_per_layer=4 if model_type in ("gemma2", "gemma3_text") else 2,
        mtp_layers=_int(cfg, "num_nextn_predict_layers", default=0),
        known=model_type in KNOWN_MODEL_TYPES,
    )


def facts_without_formula(config: Mapping[str, Any]) -> ModelFacts:
    """The facts of a task model whose config does not read as a decoder (ViT, Whisper, CLIP...):
    what `facts_from_config` can read, else names, dtype and quantization with zero sizes."""
    try:
        return facts_from_config(config)
    except ArchitectureError:
        pass
    archs = config.get("architectures")
    model_type = str(config.get("model_type") or "")
    architecture = str(archs[0]) if isinstance(archs, list) and archs else model_type or "unknown"
    return ModelFacts(
        architecture=architecture,
        model_type=model_type,
        num_layers=0,
        hidden_size=0,
        intermediate_size=0,
        num_attention_heads=0,
        num_kv_heads=0,
        head_dim=0,
        vocab_size=_int(config, "vocab_size", default=0),
        tie_word_embeddings=False,
        max_position_embeddings=0,
        sliding_window=None,
        layer_windows=(),
        dtype=_dtype(config, config),
        quantization=_quantization(config.get("quantization_config")),
        known=False,
    )


@dataclass(frozen=True)
class Tower:
    """One transformer stack of a task model: what its working memory follows from."""

    name: str  # text, vision, audio, encoder or decoder
    layers: int
    hidden_size: int
    intermediate_size: int
    positions: int  # the most tokens one input has: text tokens, image patches, audio frames


# Positions when a config names none: BERT's 512 for text; 30 s of audio at the 50 frames per
# second that wav2vec2- and Whisper-style feature encoders make.
TEXT_POSITIONS = 512
AUDIO_FRAMES = 1500
_NESTED_TOWERS = {
    "text_config": "text",
    "vision_config": "vision",
    "audio_config": "audio",
    "encoder": "encoder",
    "decoder": "decoder",
}


def towers_from_config(config: Mapping[str, Any]) -> tuple[Tower, ...]:
    """The stacks of a task model: nested configs (CLIP, BLIP, VisionEncoderDecoder), a flat
    encoder-decoder (Whisper, BART, T5, Marian) as two, or the config itself as one."""
    towers = []
    for key, name in _NESTED_TOWERS.items():
        sub = config.get(key)
        if isinstance(sub, Mapping):
            towers.append(_tower(sub, name))
    if not any(towers):
        flat_decoder = any(k in config for k in ("decoder_layers", "num_decoder_layers"))
        if flat_decoder or config.get("is_encoder_decoder") is True:
            towers = [_tower(config, "encoder", "encoder"), _tower(config, "decoder", "decoder")]
        else:
            towers = [_tower(config, _kind_of_stack(config))]
    return tuple(t for t in towers if t is not None)


def _kind_of_stack(config: Mapping[str, Any]) -> str:
    if "image_size" in config or "num_channels" in config:
        return "vision"
    if "conv_dim" in config or "num_mel_bins" in config:
        return "audio"
    return "text"


def _first(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = _optional_int(config, key)
        if value is not None:
            return value
    return None


def _tower(cfg: Mapping[str, Any], name: str, prefix: str = "") -> Tower | None:
    hidden = _first(cfg, "hidden_size", "d_model", "n_embd", "embed_dim", "dim")
    if hidden is None:
        return None
    own = (f"{prefix}_layers", "num_decoder_layers") if prefix == "decoder" else (f"{prefix}_layers",)
    layers = _first(cfg, *own, "num_hidden_layers", "num_layers", "n_layer", "n_layers") or 0
    ffn = _first(cfg, f"{prefix}_ffn_dim", "intermediate_size", "d_ff", "ffn_dim", "n_inner", "hidden_dim")
    return Tower(name, layers, hidden, ffn or 4 * hidden, _positions(cfg, name, prefix))


def _positions(cfg: Mapping[str, Any], name: str, prefix: str) -> int:
    own = {"encoder": "max_source_positions", "decoder": "max_target_positions"}.get(prefix, "")
    found = _first(cfg, own, "max_position_embeddings", "n_positions", "max_seq_len")
    if found is not None:
        return found
    image, patch = _side(cfg.get("image_size")), _side(cfg.get("patch_size"))
    if image and patch:
        return (image // patch) ** 2 + 1  # the patches and a class token
    if name == "audio" or _kind_of_stack(cfg) == "audio":
        return AUDIO_FRAMES
    return TEXT_POSITIONS


def _side(value: Any) -> int | None:
    """An image or patch side: an int, or the larger of a [height, width] pair."""
    if isinstance(value, list | tuple):
        sides = [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v > 0]
        return max(sides) if sides else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _dtype(config: Mapping[str, Any], cfg: Mapping[str, Any]) -> str | None:
    for source in (cfg, config):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value.removeprefix("torch.")
    return None


def _mla(cfg: Mapping[str, Any]) -> MLAFacts | None:
    rank = _optional_int(cfg, "kv_lora_rank")
    if rank is None:
        return None
    return MLAFacts(
        kv_lora_rank=rank,
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim"),
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim"),
        v_head_dim=_int(cfg, "v_head_dim"),
        q_lora_rank=_optional_int(cfg, "q_lora_rank"),
    )


def _moe(cfg: Mapping[str, Any], model_type: str, layers: int, intermediate: int) -> MoEFacts | None:
    experts = _int(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0)
    if experts <= 0:
        return None
    per_token = _int(cfg, "num_experts_per_tok", "num_experts_per_token", "top_k", default=2)
    expert_size = _int(cfg, "moe_intermediate_size", default=intermediate)
    shared = 0
    if model_type.startswith("deepseek"):
        shared = _int(cfg, "n_shared_experts", default=0) * expert_size
        first_dense = _int(cfg, "first_k_dense_replace", default=0)
        freq = max(_int(cfg, "moe_layer_freq", default=1), 1)
        moe_layers = tuple(i for i in range(layers) if i >= first_dense and i % freq == 0)
    elif model_type.startswith("qwen"):
        shared = _int(cfg, "shared_expert_intermediate_size", default=0)
        step = max(_int(cfg, "decoder_sparse_step", default=1), 1)
        dense_only = cfg.get("mlp_only_layers") or []
        moe_layers = tuple(i for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    else:
        moe_layers = tuple(range(layers))
    return MoEFacts(
        num_experts=experts,
        experts_per_token=per_token,
        expert_intermediate_size=expert_size,
        shared_intermediate_size=shared,
        moe_layers=moe_layers,
        shared_expert_gate=model_type == "qwen2_moe" and shared > 0,
        router_bias=cfg.get("topk_method") == "noaux_tc",
    )


def _layer_windows(
    cfg: Mapping[str, Any], model_type: str, layers: int
) -> tuple[int | None, tuple[int | None, ...]]:
    window = _optional_int(cfg, "sliding_window")
    full: tuple[int | None, ...] = (None,) * layers
    if window is None:
        return None, full
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        windows = tuple(window if t == "sliding_attention" else None for t in types)
    elif model_type in _QWEN:
        if cfg.get("use_sliding_window") is not True:
            return None, full
        first = _int(cfg, "max_window_layers", default=layers)
        windows = tuple(window if i >= first else None for i in range(layers))
    elif model_type == "gemma2":  # even layers slide, odd layers attend globally
        windows = tuple(window if i % 2 == 0 else None for i in range(layers))
    elif model_type == "gemma3_text":  # five local layers, then one global
        pattern = _int(cfg, "sliding_window_pattern", default=6)
        windows = tuple(window if (i + 1) % pattern != 0 else None for i in range(layers))
    else:  # Mistral-7B-v0.1, Phi-3, and anything else with a window: every layer
        windows = (window,) * layers
    return (window if any(w is not None for w in windows) else None), windows


def _quantization(raw: Any) -> QuantizationConfig | None:
    if not isinstance(raw, Mapping):
        return None
    method = str(raw.get("quant_method") or raw.get("quant_type") or "unknown").lower()
    bits = _optional_int(raw, "bits") or _optional_int(raw, "w_bit")
    group = _optional_int(raw, "group_size") or _optional_int(raw, "q_group_size")
    scheme: str | None = None
    if method == "awq":
        scheme = "awq" if (bits or 4) == 4 else None
    elif method == "gptq":
        scheme = {4: "gptq", 8: "int8"}.get(bits or 4)
    elif method in ("fp8", "fbgemm_fp8"):
        scheme = "fp8"
    elif method == "compressed-tensors":
        scheme, bits = _compressed_tensors_scheme(raw)
    return QuantizationConfig(method=method, bits=bits, group_size=group, scheme=scheme)


def _compressed_tensors_scheme(raw: Mapping[str, Any]) -> tuple[str | None, int | None]:
    groups = raw.get("config_groups")
    if not isinstance(groups, Mapping):
        return None, None
    for group in groups.values():
        weights = group.get("weights") if isinstance(group, Mapping) else None
        if not isinstance(weights, Mapping):
            continue
        bits = _optional_int(weights, "num_bits")
        kind = weights.get("type")
        if bits == 8:
            return ("fp8" if kind == "float" else "int8"), bits
        if bits == 4 and kind == "int":
            return "gptq", bits  # W4A16 "pack-quantized": the GPTQ int4 layout and size
        return None, bits
    return None, None


def _attention_params(f: ModelFacts) -> tuple[int, int]:
    """(matrix params, vector params) of one layer's attention."""
    h = f.hidden_size
    if f.mla is not None:
        m = f.mla
        n = f.num_attention_heads
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q, q_vec = h * m.q_lora_rank + m.q_lora_rank * n * qk, m.q_lora_rank
        else:
            q, q_vec = h * n * qk, 0
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_b = m.kv_lora_rank * n * (m.qk_nope_head_dim + m.v_head_dim)
        o = n * m.v_head_dim * h
        return q + kv_a + kv_b + o, q_vec + m.kv_lora_rank
    q_dim = f.num_attention_heads * f.head_dim
    kv_dim = f.num_kv_heads * f.head_dim
    matrices = 2 * h * q_dim + 2 * h * kv_dim
    vectors = (q_dim + 2 * kv_dim if f.qkv_bias else 0) + (h if f.o_bias else 0)
    vectors += 2 * f.head_dim if f.qk_norm else 0
    return matrices, vectors


def parameter_count(f: ModelFacts) -> ParamCount:
    """Parameters from the config alone (the formulas are in the module docstring)."""
    h = f.hidden_size
    embedding = f.vocab_size * h
    lm_head = 0 if f.tie_word_embeddings else f.vocab_size * h
    attn, attn_vec = _attention_params(f)
    moe_layers = set(f.moe.moe_layers) if f.moe else set()
    dense_mlp = 3 * h * f.intermediate_size
    matrices = vectors = experts = active_experts = 0
    for layer in range(f.num_layers):
        matrices += attn
        vectors += attn_vec + f.norms_per_layer * h
        if f.moe is not None and layer in moe_layers:
            one_expert = 3 * h * f.moe.expert_intermediate_size
            experts += f.moe.num_experts * one_expert
            active_experts += f.moe.experts_per_token * one_expert
            matrices += h * f.moe.num_experts + 3 * h * f.moe.shared_intermediate_size
            matrices += h if f.moe.shared_expert_gate else 0
            vectors += f.moe.num_experts if f.moe.router_bias else 0
        else:
            matrices += dense_mlp
    vectors += h  # final norm
    total = embedding + lm_head + matrices + vectors + experts
    return ParamCount(
        total=total,
        active=total - experts + active_experts,
        embedding=embedding,
        lm_head=lm_head,
        vector=vectors,
        expert=experts,
    )


def kv_layer_bytes_per_token(f: ModelFacts, kv_dtype_bytes: int, tensor_parallel: int = 1) -> int:
    """One layer's cache per token on one GPU (see the module docstring)."""
    if f.mla is not None:
        return (f.mla.kv_lora_rank + f.mla.qk_rope_head_dim) * kv_dtype_bytes
    heads = math.ceil(f.num_kv_heads / tensor_parallel)
    return 2 * heads * f.head_dim * kv_dtype_bytes


def kv_bytes_per_token(f: ModelFacts, kv_dtype_bytes: int, tensor_parallel: int = 1) -> int:
    """Every layer's cache for one token, windows aside: ``L × g × d × 2 × b`` (MLA: ``L × (r+p) × b``)."""
    return f.num_layers * kv_layer_bytes_per_token(f, kv_dtype_bytes, tensor_parallel)


def kv_bytes_for_context(f: ModelFacts, context: int, kv_dtype_bytes: int, tensor_parallel: int = 1) -> int:
    """One sequence of `context` tokens: sliding-window layers hold at most their window."""
    per_layer = kv_layer_bytes_per_token(f, kv_dtype_bytes, tensor_parallel)
    tokens = sum(context if w is None else min(context, w) for w in f.layer_windows)
    return per_layer * tokens
