"""Bad input gets the API's own error shape and status, never a 500 or a hang, and leaves nothing behind."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server_process import ServerProcess

CHAT = "/v1/chat/completions"
_USER = b'{"max_tokens": 2, "messages": [{"role": "user", "content": "x"}]'


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (CHAT, b"{not json", 400),
        (CHAT, b'{"messages": "hi"}', 400),
        (CHAT, b'{"messages": []}', 400),
        (CHAT, b'{"messages": [{"role": "wizard", "content": "x"}]}', 400),
        (CHAT, b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404),
        (
            CHAT,
            b'{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}',
            400,
        ),
        ("/v1/completions", b'{"prompt": ""}', 400),
        ("/v1/completions", b'{"prompt": [], "max_tokens": 3}', 400),
        ("/v1/completions", b'{"prompt": [99999999], "max_tokens": 3}', 400),
        ("/v1/completions", b'{"prompt": "x", "logprobs": 9}', 400),
        ("/v1/embeddings", b'{"input": "x"}', 400),
        # a hostile caller: nesting past the parser's recursion, NaN and overflowing floats,
        # a template of its own, lists long enough to keep the replica busy
        (CHAT, b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
        ("/v1/completions", b'{"prompt": "x", "logit_bias": ' + b"[" * 100 + b"]" * 100 + b"}", 400),
        (CHAT, _USER + b', "repetition_penalty": NaN}', 400),
        (CHAT, _USER + b', "repetition_penalty": 1e999}', 400),
        ("/v1/completions", b'{"prompt": "x", "max_tokens": 2, "repetition_penalty": "Infinity"}', 400),
        (CHAT, _USER + b', "chat_template_kwargs": {"chat_template": "{{ 1 }}"}}', 400),
        (CHAT, _USER + b', "chat_template_kwargs": {"tools": []}}', 400),
        (CHAT, _USER + b', "chat_template_kwargs": {"enable_thinking": {"nested": 1}}}', 400),
        ("/v1/completions", b'{"max_tokens": 1, "prompt": [' + b",".join([b'"x"'] * 65) + b"]}", 400),
        ("/v1/completions", b'{"max_tokens": 1, "prompt": [' + b",".join([b"[1]"] * 65) + b"]}", 400),
    ],
)
def test_openai_routes_answer_openai_errors(
    tiny_server: ServerProcess, path: str, body: bytes, status: int
) -> None:
    r = httpx.post(tiny_server.url + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate", b"{oops"),
        ("/generate", b'{"inputs": ""}'),
        ("/generate", b'{"inputs": "x", "parameters": {"max_new_tokens": 0}}'),
        ("/generate", b'{"inputs": "x", "parameters": {"max_new_tokens": 99999}}'),
        ("/generate", b'{"inputs": "x", "parameters": {"top_p": 1.5}}'),
        ("/generate_stream", b'{"inputs": "x", "parameters": {"grammar": {"type": "json", "value": {}}}}'),
        ("/", b'{"parameters": {}}'),
        ("/embed", b'{"inputs": "x"}'),
        ("/generate", b'{"inputs": "x", "parameters": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("/", b"[" * 5000 + b"]" * 5000),
        ("/generate", b'{"inputs": "x", "parameters": {"max_new_tokens": 2, "repetition_penalty": NaN}}'),
        ("/generate", b'{"inputs": "x", "parameters": {"max_new_tokens": 2, "repetition_penalty": 1e999}}'),
        ("/generate_stream", b'{"inputs": "x", "parameters": {"max_new_tokens": 2, "temperature": NaN}}'),
    ],
)
def test_tgi_routes_answer_tgi_errors(tiny_server: ServerProcess, path: str, body: bytes) -> None:
    r = httpx.post(tiny_server.url + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    payload = r.json()
    assert set(payload) == {"error", "error_type"} and payload["error_type"] == "validation"


def test_a_callers_own_chat_template_never_runs(tiny_server: ServerProcess) -> None:
    """A template of nested loops would hold the replica's event loop for hours; it is refused
    before anything renders, naming the key, and the replica answers at once meanwhile."""
    runaway = "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "chat_template_kwargs": {"chat_template": runaway},
    }
    r = httpx.post(tiny_server.url + CHAT, json=body, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "chat_template_kwargs.chat_template"
    assert "enable_thinking" in r.json()["error"]["message"]
    assert httpx.get(f"{tiny_server.url}/health", timeout=2).status_code == 200


def test_oversized_body_is_413(tiny_server: ServerProcess) -> None:
    big = b'{"prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    r = httpx.post(
        f"{tiny_server.url}/v1/completions", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert "larger than" in r.json()["error"]["message"]


def test_errors_leave_no_kv_blocks_behind(tiny_server: ServerProcess) -> None:
    for _ in range(5):
        httpx.post(f"{tiny_server.url}/v1/completions", json={"prompt": "x", "max_tokens": 10**6})
        httpx.post(f"{tiny_server.url}/generate", json={"inputs": "x", "parameters": {"temperature": 9}})
    assert tiny_server.metric("modelport:kv_cache_usage_perc") == 0
    assert tiny_server.metric("modelport:num_requests_waiting") == 0
