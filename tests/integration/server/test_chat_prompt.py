"""Chat prompts come from the model's own chat template (rendered off the event loop, under a time
limit, with only allow-listed variables from the caller); a model without one gets a clear 400."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from modelport import envs
from modelport.protocol.errors import APIError
from modelport.protocol.openai import ChatCompletionRequest
from modelport.server.generation import chat_prompt_ids, render_chat_prompt
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


def _request(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **extra})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chat_template": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"},
        {"tokenize": True},
        {"tools": [{"type": "function"}]},
        {"enable_thinking": ["a", "list"]},
        {"reasoning_effort": "x" * 1000},
    ],
)
def test_only_known_template_variables_with_short_scalar_values_are_accepted(
    kwargs: dict[str, object],
) -> None:
    with pytest.raises(APIError) as info:
        _request(chat_template_kwargs=kwargs).check_supported()
    assert info.value.status == 400 and info.value.param == f"chat_template_kwargs.{next(iter(kwargs))}"


def test_allowed_variables_reach_the_endpoints_own_template(tiny_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.chat_template = "{% if enable_thinking %}think:{% endif %}{{ messages[0]['content'] }}"
    body = _request(chat_template_kwargs={"enable_thinking": True})
    body.check_supported()
    ids = asyncio.run(
        render_chat_prompt(_state(tok), [{"role": "user", "content": "hi"}], True, body.template_kwargs())
    )
    assert tok.decode(ids) == "think:hi"


def test_a_slow_template_is_cut_off_and_the_event_loop_keeps_serving(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint's own template renders in a worker thread under a time limit: a render of
    ~2 s (on an idle machine; longer under load) is refused at 0.3 s with a 400, and the event
    loop ran other work all along."""
    monkeypatch.setenv(envs.CHAT_TEMPLATE_TIMEOUT_S.name, "0.3")
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.chat_template = (
        "{% for i in range(10000) %}{% for j in range(5000) %}{% if i == j %}{{ '' }}{% endif %}"
        "{% endfor %}{% endfor %}{{ messages[0]['content'] }}"
    )

    async def race() -> tuple[APIError, int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        start = time.monotonic()
        with pytest.raises(APIError) as info:
            await render_chat_prompt(_state(tok), [{"role": "user", "content": "hi"}], True, None)
        elapsed = time.monotonic() - start
        task.cancel()
        return info.value, ticks, elapsed

    err, ticks, elapsed = asyncio.run(race())
    assert err.status == 400 and err.code == "chat_template_timeout" and "0.3 s" in err.message
    assert elapsed < 1.5 and ticks >= 3
