"""Embedding routes on a real uvicorn server, driven by the real OpenAI SDK, huggingface_hub and httpx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from huggingface_hub import InferenceClient, constants

from modelport.engine.embedder import Embedder
from modelport.protocol.errors import APIError, Dialect, dialect_for_path, render, tgi_status
from modelport.server.embed_routes import embed_task_payload, router
from modelport.server.state import ModelKind, ServerState
from tests.support.thread_server import serving


def build_app(state: ServerState) -> FastAPI:
    app = FastAPI()
    app.state.mp = state

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        dialect = dialect_for_path(request.url.path)
        status = exc.status if dialect is Dialect.OPENAI else tgi_status(exc)
        return JSONResponse(render(exc, dialect), status_code=status)

    @app.post("/")
    async def root(request: Request) -> JSONResponse:
        return JSONResponse(await embed_task_payload(state, await request.json()))

    app.include_router(router)
    return app


@pytest.fixture(scope="module")
def embedder(minilm_model: Path) -> Iterator[Embedder]:
    emb = Embedder.load(minilm_model, model_name="minilm")
    emb.start()
    yield emb
    emb.shutdown()


@pytest.fixture(scope="module")
def url(embedder: Embedder, minilm_model: Path) -> Iterator[str]:
    state = ServerState(
        model_name="minilm",
        model_path=str(minilm_model),
        kind=ModelKind.EMBED,
        tokenizer=embedder.tokenizer,
        max_model_len=embedder.max_input_tokens,
        embedder=embedder,
        ready=True,
    )
    with serving(build_app(state), start_timeout_s=20, lifespan="off") as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def tei_embed(url: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/embed", json=body, timeout=30)


def test_openai_sdk_default_base64_matches_tei_floats(client: openai.OpenAI, url: str) -> None:
    texts = ["A man is eating food.", "The stock market fell."]
    out = client.embeddings.create(model="minilm", input=texts)  # the SDK asks for base64 and decodes it
    assert out.object == "list" and out.model == "minilm"
    assert [d.index for d in out.data] == [0, 1]
    assert out.usage.prompt_tokens == out.usage.total_tokens > 0
    ours = np.array([d.embedding for d in out.data], dtype=np.float32)
    tei = np.array(tei_embed(url, {"inputs": texts}).json(), dtype=np.float32)
    np.testing.assert_array_equal(ours, tei)
    assert np.linalg.norm(ours, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_openai_float_format_dimensions_and_token_ids(client: openai.OpenAI, embedder: Embedder) -> None:
    out = client.embeddings.create(
        model="minilm", input="hello world", encoding_format="float", dimensions=64
    )
    vec = np.array(out.data[0].embedding)
    assert vec.shape == (64,) and np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    ids = [t.id for t in embedder.tokenize(["hello world"])[0]]
    by_ids = client.embeddings.create(model="minilm", input=[ids], encoding_format="float", dimensions=64)
    np.testing.assert_allclose(by_ids.data[0].embedding, vec, atol=1e-6)


def test_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="minilm", input=["ok", ""])
    assert err.value.param == "input" and "`input`[1] is an empty string" in err.value.message
    with pytest.raises(openai.BadRequestError, match="maximum context length is 256 tokens"):
        client.embeddings.create(model="minilm", input="word " * 300)
    with pytest.raises(openai.BadRequestError, match="`dimensions` must be between 1 and 384"):
        client.embeddings.create(model="minilm", input="x", dimensions=1000)
    with pytest.raises(openai.BadRequestError, match="`input` must be a string"):
        client.embeddings.create(model="minilm", input=[1.5])  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4", input="x")


def test_hf_feature_extraction_and_similarity(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub 2.x refuses every request, loopback included, while HF_HUB_OFFLINE=1 (read at import);
    # this client only talks to the local server, so lift it for this test
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hf = InferenceClient(base_url=url)
    one = hf.feature_extraction("A man is eating food.")
    assert one.shape == (1, 384) and one.dtype == np.float32
    many = hf.feature_extraction(["a", "b", "c"], normalize=False, dimensions=32)
    assert many.shape == (3, 32) and abs(float(np.linalg.norm(many[0])) - 1.0) > 0.01
    assert hf.feature_extraction("word " * 300, truncate=True).shape == (1, 384)
    scores = hf.sentence_similarity(
        "A man is eating food.",
        other_sentences=["A man is eating a piece of bread.", "The stock market fell."],
    )
    assert scores[0] > 0.5 > 0.1 > scores[1]
    direct = httpx.post(
        f"{url}/similarity",
        json={
            "inputs": {
                "source_sentence": "A man is eating food.",
                "sentences": ["A man is eating a piece of bread."],
            }
        },
    )
    assert direct.json() == pytest.approx(scores[:1], abs=1e-6)


def test_tei_embed_options(url: str) -> None:
    single = tei_embed(url, {"inputs": "hello"})
    assert single.status_code == 200 and len(single.json()) == 1 and len(single.json()[0]) == 384
    raw = np.array(tei_embed(url, {"inputs": ["hello"], "normalize": False}).json()[0])
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 0.01
    long_text = "start " + "word " * 300
    left = tei_embed(url, {"inputs": long_text, "truncate": True, "truncation_direction": "Left"})
    right = tei_embed(url, {"inputs": long_text, "truncate": True, "truncation_direction": "right"})
    assert left.status_code == right.status_code == 200 and left.json() != right.json()


@pytest.mark.parametrize(
    ("body", "status", "error_type", "needle"),
    [
        ({"inputs": ["x"] * 33}, 413, "validation", "batch size 33 > maximum allowed batch size 32"),
        ({"inputs": []}, 422, "empty", "`inputs` must not be empty"),
        ({"inputs": "word " * 300}, 422, "validation", "set `truncate` to true"),
        ({"inputs": "x", "prompt_name": "passage"}, 422, "validation", "not one of this model's prompts"),
        ({"inputs": 5}, 422, "validation", "`inputs` must be a string"),
        ({"inputs": "x", "truncation_direction": "middle"}, 422, "validation", '"left" or "right"'),
        ({"normalize": True}, 422, "validation", "`inputs` is required"),
        (["x"], 422, "validation", "must be a JSON object"),
    ],
)
def test_tei_embed_errors(url: str, body: object, status: int, error_type: str, needle: str) -> None:
    r = tei_embed(url, body)
    assert r.status_code == status
    assert r.json()["error_type"] == error_type and needle in r.json()["error"]


def test_bad_json_and_generative_model_errors(url: str) -> None:
    r = httpx.post(f"{url}/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{url}/similarity", json={"inputs": {"source_sentence": "x", "sentences": []}})
    assert r.status_code == 422 and r.json()["error_type"] == "empty"


def test_generative_state_refuses_embeddings() -> None:
    from fastapi.testclient import TestClient

    state = ServerState(
        model_name="tiny", model_path="/x", kind=ModelKind.GENERATE, tokenizer=None, max_model_len=128
    )
    with TestClient(build_app(state)) as tc:
        r = tc.post("/v1/embeddings", json={"input": "x"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_kind"
        r = tc.post("/embed", json={"inputs": "x"})
        assert r.status_code == 422 and "does not serve embeddings" in r.json()["error"]


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/embed", b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("/similarity", b"[" * 5000 + b"]" * 5000),
        ("/v1/embeddings", b'{"input": ' + b"[" * 100 + b"]" * 100 + b"}"),
        ("/embed", b'{"inputs": "x", "normalize": NaN}'),
    ],
)
def test_deeply_nested_or_non_json_bodies_are_refused_in_the_apis_shape(
    url: str, path: str, raw: bytes
) -> None:
    """Past 64 levels (CPython's json would raise RecursionError near 1000: a 500) or with NaN."""
    r = httpx.post(f"{url}{path}", content=raw, headers={"content-type": "application/json"})
    if path.startswith("/v1/"):
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text
    else:
        assert r.status_code == 422 and r.json()["error_type"] == "validation", r.text
    message = r.json()["error"]["message"] if path.startswith("/v1/") else r.json()["error"]
    assert "deeper than 64 levels" in message or "not valid JSON" in message
