"""Chat prompts come from the model's own chat template; a model without one gets a clear 400."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from modelport.protocol.errors import APIError
from modelport.server.generation import chat_prompt_ids
from modelport.server.state import ModelKind, ServerState


def _state(tokenizer: object) -> ServerState:
    return ServerState(
        model_name="tiny", model_path="/x", kind=ModelKind.GENERATE, tokenizer=tokenizer, max_model_len=2048
    )


def test_chatml_template_is_applied(tiny_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    ids = chat_prompt_ids(_state(tok), [{"role": "user", "content": "hi"}], True, None)
    assert tok.decode(ids) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_model_without_template_gets_a_400_that_says_what_to_do(tiny_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.chat_template = None
    with pytest.raises(APIError) as info:
        chat_prompt_ids(_state(tok), [{"role": "user", "content": "hi"}], True, None)
    assert info.value.status == 400 and info.value.code == "no_chat_template"
    assert "/v1/completions" in info.value.message
