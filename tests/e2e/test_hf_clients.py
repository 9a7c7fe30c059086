"""huggingface_hub's InferenceClient and the text-generation (TGI) client, unchanged, against modelport."""

from __future__ import annotations

import pytest
from huggingface_hub import InferenceClient
from text_generation import Client as TGIClient
from text_generation.errors import ValidationError as TGIValidationError

from tests.support.server_process import ServerProcess


@pytest.fixture(autouse=True)
def _allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub refuses every request, loopback too, in offline mode; the server stays offline."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_inference_client_text_generation_with_details(tiny_server: ServerProcess) -> None:
    client = InferenceClient(base_url=tiny_server.url)
    out = client.text_generation("def f(x):", max_new_tokens=6, details=True, decoder_input_details=True)
    assert out.details is not None
    assert out.details.generated_tokens == len(out.details.tokens) <= 6
    assert out.details.finish_reason in {"length", "eos_token"}
    assert len(out.details.prefill) > 0


def test_inference_client_text_generation_stream(tiny_server: ServerProcess) -> None:
    client = InferenceClient(base_url=tiny_server.url)
    full = client.text_generation("import sys", max_new_tokens=8)
    events = list(client.text_generation("import sys", max_new_tokens=8, stream=True, details=True))
    assert "".join(e.token.text for e in events) == full
    assert events[-1].generated_text == full and events[-1].details is not None


def test_inference_client_chat_completion(tiny_server: ServerProcess) -> None:
    client = InferenceClient(base_url=tiny_server.url)  # sends model "dummy", as against TGI
    out = client.chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert out.choices[0].message.role == "assistant"
    chunks = list(
        client.chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True)
    )
    assert chunks and chunks[0].choices[0].delta.role == "assistant"


def test_inference_client_health_and_info(tiny_server: ServerProcess) -> None:
    import httpx

    assert httpx.get(f"{tiny_server.url}/health").status_code == 200
    info = httpx.get(f"{tiny_server.url}/info").json()
    assert info["model_id"] == "tiny" and info["max_total_tokens"] == 2048


def test_tgi_client_generate_and_stream(tiny_server: ServerProcess) -> None:
    client = TGIClient(tiny_server.url, timeout=60)
    resp = client.generate("for i in range(", max_new_tokens=5)
    assert resp.details.generated_tokens <= 5
    streamed = "".join(r.token.text for r in client.generate_stream("for i in range(", max_new_tokens=5))
    assert streamed == resp.generated_text


def test_tgi_client_validation_error(tiny_server: ServerProcess) -> None:
    client = TGIClient(tiny_server.url, timeout=60)
    with pytest.raises(TGIValidationError):
        client.generate("x", max_new_tokens=100_000)


def test_tgi_tokenize(tiny_server: ServerProcess) -> None:
    import httpx

    toks = httpx.post(f"{tiny_server.url}/tokenize", json={"inputs": "hello world"}).json()
    assert "".join(t["text"] for t in toks) == "hello world"
    assert all({"id", "text", "start", "stop"} <= set(t) for t in toks)
