"""`modelport serve` on the real all-MiniLM-L6-v2 folder, driven by the OpenAI SDK and InferenceClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.support.server_process import ServerProcess


@pytest.fixture(scope="module")
def embed_server(minilm_model: Path) -> Iterator[ServerProcess]:
    with ServerProcess(minilm_model, "--served-model-name", "minilm") as server:
        yield server


def test_openai_sdk_embeddings_default_base64(embed_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key="unused", max_retries=0)
    r = client.embeddings.create(
        model="minilm", input=["a cat sits on the mat", "a kitten on a rug", "tax law"]
    )
    vecs = np.array([d.embedding for d in r.data])
    assert vecs.shape == (3, 384) and r.usage.prompt_tokens > 0
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # similar pair closer than the unrelated one
    floats = client.embeddings.create(model="minilm", input="hello", encoding_format="float")
    b64 = client.embeddings.create(model="minilm", input="hello")
    assert np.allclose(floats.data[0].embedding, b64.data[0].embedding, atol=1e-6)


def test_inference_client_feature_extraction(
    embed_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # loopback only; the server itself is offline
    out = InferenceClient(base_url=embed_server.url).feature_extraction("hello world")
    assert np.asarray(out).shape[-1] == 384


def test_tei_routes_and_wrong_kind(embed_server: ServerProcess) -> None:
    url = embed_server.url
    vecs = httpx.post(f"{url}/embed", json={"inputs": ["one", "two"]}).json()
    assert len(vecs) == 2 and len(vecs[0]) == 384
    toks = httpx.post(f"{url}/tokenize", json={"inputs": "hello"}).json()
    assert toks[0][0]["special"] is True  # [CLS]
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "embedding model" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/health").status_code == 200
    assert "modelport:embedding_requests_total" in httpx.get(f"{url}/metrics").text
