"""The real OpenAI Python SDK against a real `modelport serve` process."""

from __future__ import annotations

import openai
import pytest

from tests.support.server_process import ServerProcess


@pytest.fixture(scope="module")
def client(tiny_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_completion_tokens=8,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8


def test_streamed_chat_with_usage_matches_non_streamed(client: openai.OpenAI) -> None:
    args = dict(
        model="tiny",
        messages=[{"role": "user", "content": "stream please"}],
        max_tokens=12,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    full = client.chat.completions.create(**args)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(
            **args,
            stream=True,  # type: ignore[call-overload]
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_completions_default_max_tokens_is_16(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="tiny", prompt="def main():", temperature=0, extra_body={"ignore_eos": True}
    )
    assert r.object == "text_completion" and r.usage is not None
    assert r.usage.completion_tokens == 16


def test_completions_token_prompts_and_echo(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="tiny",
        prompt=[[5, 6, 7], [8, 9]],
        max_tokens=3,
        temperature=0,
        echo=True,
        extra_body={"ignore_eos": True},
    )
    assert len(r.choices) == 2 and r.usage is not None
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 6


def test_same_seed_same_output_and_n(client: openai.OpenAI) -> None:
    args = dict(
        model="tiny",
        prompt="import os",
        max_tokens=10,
        temperature=1.0,
        seed=1234,
        n=2,
        extra_body={"ignore_eos": True},
    )
    a = client.completions.create(**args)  # type: ignore[call-overload]
    b = client.completions.create(**args)  # type: ignore[call-overload]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert len(a.choices) == 2 and a.choices[0].index == 0 and a.choices[1].index == 1


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        extra_body={"ignore_eos": True},
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 3
    for item in content:
        assert len(item.top_logprobs) == 3
        assert item.logprob <= 0
        # greedy: the chosen token is the most likely one
        assert abs(item.top_logprobs[0].logprob - item.logprob) < 1e-4


def test_stop_string_is_not_in_output(client: openai.OpenAI) -> None:
    base = (
        client.completions.create(
            model="tiny", prompt="class A:", max_tokens=20, temperature=0, extra_body={"ignore_eos": True}
        )
        .choices[0]
        .text
    )
    assert len(base) > 4
    stop = base[2:4]
    r = client.completions.create(
        model="tiny",
        prompt="class A:",
        max_tokens=20,
        temperature=0,
        stop=[stop],
        extra_body={"ignore_eos": True},
    )
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == base[: base.index(stop)]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 3.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"n": 100}, "n"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_bad_parameters_are_400_with_param(
    client: openai.OpenAI, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], **kwargs)  # type: ignore[call-overload]
    assert info.value.body["param"] == param  # type: ignore[index]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])


def test_prompt_longer_than_context_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt=[1] * 5000, max_tokens=1)
    assert "context" in str(info.value)


def test_embeddings_on_generative_model_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="tiny", input="hello")
