from __future__ import annotations

import pytest

from modelport.bench.config import Endpoint, LoadConfig, api_root
from modelport.bench.loadgen import build_body
from modelport.bench.prompts import make_prompts


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080"),
        ("https://host/prefix/v1", "https://host/prefix"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_api_root(url: str, root: str) -> None:
    assert api_root(url) == root
    assert LoadConfig(url=url).root == root


@pytest.mark.parametrize("field", ["concurrency", "num_requests", "prompt_tokens", "output_tokens"])
def test_config_rejects_non_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LoadConfig(url="http://x", **{field: 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="warmup"):
        LoadConfig(url="http://x", warmup=-1)


def test_config_dict_hides_api_key() -> None:
    d = LoadConfig(url="http://x", api_key="secret", endpoint=Endpoint.chat).to_dict()
    assert "api_key" not in d
    assert d["endpoint"] == "chat"
    assert "secret" not in repr(d)


def test_prompts_are_deterministic_distinct_and_sized() -> None:
    a = make_prompts(5, 40, seed=3)
    assert a == make_prompts(5, 40, seed=3)
    assert a != make_prompts(5, 40, seed=4)
    assert len(set(a)) == 5
    assert all(len(p.split()) == 40 for p in a)


def test_body_completions_stream() -> None:
    cfg = LoadConfig(url="http://x", output_tokens=7)
    body = build_body(cfg, "m", "hello")
    assert body == {
        "model": "m",
        "prompt": "hello",
        "max_tokens": 7,
        "temperature": 0.0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }


def test_body_chat_unary_without_ignore_eos() -> None:
    cfg = LoadConfig(url="http://x", endpoint=Endpoint.chat, stream=False, ignore_eos=False)
    body = build_body(cfg, "m", "hello")
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert "prompt" not in body
    assert "stream_options" not in body
    assert "ignore_eos" not in body
    assert Endpoint.chat.path == "/v1/chat/completions"
    assert Endpoint.completions.path == "/v1/completions"


def test_extra_body_is_merged_last() -> None:
    cfg = LoadConfig(url="http://x", ignore_eos=False, extra_body={"top_k": 1, "max_tokens": 3})
    body = build_body(cfg, "m", "hello")
    assert body["top_k"] == 1 and body["max_tokens"] == 3
