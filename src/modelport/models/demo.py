"""Build small causal LMs offline: a byte-level BPE trained on local text + a random Llama.

The Hugging Face Hub is unreachable on the machines modelport is developed on, so the demo
and the tests build their own model folders in exactly the layout a Hub download has:
config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with a ChatML chat
template) and generation_config.json. Random weights are fine for serving and throughput;
the text they produce is noise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class LlamaShape:
    """The architecture knobs of a demo model."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int = 2048


# head_dim 64 everywhere: vLLM's CPU attention needs it, so both engines can serve the same folder.
TINY = LlamaShape(
    hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=256, vocab_size=2048
)
# The shape of SmolLM-135M: ~108M parameters, a realistic size for CPU benchmarks.
SMOLLM_135M = LlamaShape(
    hidden_size=576, num_layers=30, num_heads=9, num_kv_heads=3, intermediate_size=1536, vocab_size=49152
)
SHAPES = {"tiny": TINY, "smollm-135m": SMOLLM_135M}


def _corpus(limit_bytes: int = 4_000_000) -> Iterator[str]:
    """Local text to train the tokenizer on: the standard library's own sources."""
    stdlib = Path(sys.modules["json"].__file__ or "").resolve().parent.parent
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        total += len(text)
        yield text
        if total >= limit_bytes:
            return


def build_tokenizer(out_dir: Path, vocab_size: int, max_length: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=max_length,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(str(out_dir))


def build_llama(out_dir: Path, shape: LlamaShape = TINY, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """Write a complete model folder to ``out_dir`` and return it. Deterministic for a seed."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir, shape.vocab_size, shape.max_position_embeddings)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(out_dir))
    eos_ids = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_ids,
        pad_token_id=eos_ids[1],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    gen_config = GenerationConfig(eos_token_id=eos_ids, pad_token_id=eos_ids[1])  # type: ignore[no-untyped-call]
    gen_config.save_pretrained(str(out_dir))
    (out_dir / "modelport-demo.json").write_text(json.dumps({"shape": shape.__dict__, "seed": seed}))
    return out_dir


def ensure_demo_model(out_dir: Path, shape_name: str = "tiny") -> Path:
    """Build the demo model once; later calls reuse the folder."""
    marker = Path(out_dir) / "modelport-demo.json"
    if marker.exists() and (Path(out_dir) / "model.safetensors").exists():
        return Path(out_dir)
    return build_llama(Path(out_dir), SHAPES[shape_name])
