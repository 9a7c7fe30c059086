"""TGI, TEI and HF-task clients through the gateway against engines that only serve OpenAI routes
(what vLLM and llama.cpp expose): the gateway translates, streaming included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import text_generation
from huggingface_hub import InferenceClient, constants

from modelport import Client
from tests.support.control_plane_process import ControlPlaneProcess


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("tr") / "data", None, "--no-demo") as control:
        Client(control.url, token=control.token).create_endpoint(
            "oai", model=str(tiny_model), engine_args=["--api", "openai"]
        ).wait(timeout=180, poll_interval=0.3)
        yield control


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # HF_HUB_OFFLINE blocks every huggingface_hub HTTP call, even to loopback; nothing here reaches the Hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def url(cp: ControlPlaneProcess, endpoint: str = "oai") -> str:
    return f"{cp.url}/endpoints/default/{endpoint}"


def test_the_replica_really_has_no_tgi_routes(cp: ControlPlaneProcess) -> None:
    assert httpx.get(f"{url(cp)}/info", headers=cp.headers).status_code == 404  # not translated: passed on
    assert httpx.post(f"{url(cp)}/v1/completions", headers=cp.headers,
                      json={"model": "oai", "prompt": "hi", "max_tokens": 2}).status_code == 200  # fmt: skip


def test_text_generation_client_generate_and_stream(cp: ControlPlaneProcess) -> None:
    client = text_generation.Client(url(cp), headers=cp.headers, timeout=60)
    answer = client.generate("Hello there", max_new_tokens=6)
    assert answer.details.generated_tokens == 6
    assert answer.details.finish_reason == text_generation.types.FinishReason.Length
    assert answer.generated_text

    events = list(client.generate_stream("Hello there", max_new_tokens=6))
    assert [e.details is not None for e in events] == [False] * (len(events) - 1) + [True]
    assert events[-1].generated_text == "".join(e.token.text for e in events)
    assert events[-1].generated_text == answer.generated_text  # greedy both times
    assert events[-1].details is not None and events[-1].details.generated_tokens == 6

    full = client.generate("Hello there", max_new_tokens=3, return_full_text=True)
    assert full.generated_text.startswith("Hello there")


def test_inference_client_text_generation(cp: ControlPlaneProcess) -> None:
    client = InferenceClient(model=url(cp), token=cp.token)
    text = client.text_generation("Hello there", max_new_tokens=6)
    assert isinstance(text, str) and text
    detailed = client.text_generation("Hello there", max_new_tokens=6, details=True)
    assert detailed.generated_text == text and detailed.details is not None
    assert detailed.details.generated_tokens == 6
    streamed = list(client.text_generation("Hello there", max_new_tokens=6, stream=True))
    assert "".join(streamed) == text


def test_generate_errors_come_back_in_tgi_shape(cp: ControlPlaneProcess) -> None:
    bad = httpx.post(f"{url(cp)}/generate", headers=cp.headers, json={"parameters": {}})
    assert bad.status_code == 422
    assert bad.json() == {"error": "inputs must be a string", "error_type": "validation"}
    client = text_generation.Client(url(cp), headers=cp.headers, timeout=60)
    with pytest.raises(text_generation.errors.ValidationError):
        client.generate("Hello", max_new_tokens=0)
    with pytest.raises(text_generation.errors.ValidationError):  # the engine's own 400, as TGI's 422
        client.generate("Hello", max_new_tokens=100000)


def test_tei_embed_against_an_openai_only_embedding_engine(
    cp: ControlPlaneProcess, minilm_model: Path
) -> None:
    Client(cp.url, token=cp.token).create_endpoint(
        "emb", model=str(minilm_model), task="feature-extraction", engine_args=["--api", "openai"]
    ).wait(timeout=180, poll_interval=0.3)
    tei = httpx.post(f"{url(cp, 'emb')}/embed", headers=cp.headers, json={"inputs": ["hello", "world"]})
    assert tei.status_code == 200, tei.text
    vectors = tei.json()
    assert len(vectors) == 2 and len(vectors[0]) == 384
    features = InferenceClient(model=url(cp, "emb"), token=cp.token).feature_extraction("hello")
    assert features.shape[-1] == 384
    assert abs(float(features.reshape(-1)[0]) - vectors[0][0]) < 1e-5
