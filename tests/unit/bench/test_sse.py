from __future__ import annotations

import json

import pytest

from modelport.bench.sse import StreamEvent, data_payload, parse_event


def test_data_payload() -> None:
    assert data_payload('data: {"a": 1}') == '{"a": 1}'
    assert data_payload('data:{"a": 1}') == '{"a": 1}'
    assert data_payload("data: [DONE]") == "[DONE]"
    assert data_payload(": keep-alive") is None
    assert data_payload("event: message") is None
    assert data_payload("") is None


def test_completion_chunk() -> None:
    chunk = {"choices": [{"index": 0, "text": " hello", "finish_reason": None}]}
    assert parse_event(json.dumps(chunk)) == StreamEvent(content=" hello")


def test_chat_chunks() -> None:
    role_only = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    assert parse_event(json.dumps(role_only)).content == ""
    content = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    assert parse_event(json.dumps(content)).content == "hi"
    null_content = {"choices": [{"index": 0, "delta": {"content": None}, "finish_reason": "length"}]}
    assert parse_event(json.dumps(null_content)).content == ""


def test_usage_chunk() -> None:
    chunk = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}}
    event = parse_event(json.dumps(chunk))
    assert (event.content, event.completion_tokens, event.prompt_tokens) == ("", 34, 12)


def test_usage_null_is_ignored() -> None:
    event = parse_event(json.dumps({"choices": [{"text": "x"}], "usage": None}))
    assert event.completion_tokens is None


def test_done_and_error() -> None:
    assert parse_event("[DONE]").done
    assert parse_event(" [DONE] ").done
    assert parse_event(json.dumps({"error": {"message": "boom", "code": 500}})).error == "boom"
    assert parse_event(json.dumps({"error": "plain"})).error == "plain"


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]"])
def test_malformed(payload: str) -> None:
    with pytest.raises(ValueError):
        parse_event(payload)


def test_finish_reason() -> None:
    last = {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}
    assert parse_event(json.dumps(last)).finish_reason == "length"
    assert parse_event(json.dumps({"choices": [{"text": "x", "finish_reason": None}]})).finish_reason is None
