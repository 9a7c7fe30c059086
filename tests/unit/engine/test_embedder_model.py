"""Embedder against the real all-MiniLM-L6-v2: quality, options, input checks, loading rules."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.engine.embedder import Embedder, EmbedInputError, EmbedResult, InputTooLongError
from modelport.engine.loader import ModelLoadError
from modelport.protocol.openai_embeddings import encode_vector


@pytest.fixture(scope="module")
def embedder(minilm_model: Path) -> Iterator[Embedder]:
    emb = Embedder.load(minilm_model, model_name="minilm")
    emb.start()
    yield emb
    emb.shutdown()


def embed(emb: Embedder, inputs: Sequence[str | Sequence[int]], **options: Any) -> EmbedResult:
    return asyncio.run(emb.embed(inputs, **options))


def test_similar_pairs_score_above_unrelated(embedder: Embedder) -> None:
    v = embed(
        embedder, ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."]
    ).vectors
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert float(v[0] @ v[1]) > 0.5 > 0.1 > float(v[0] @ v[2])


def test_matches_sentence_transformers_encode(embedder: Embedder) -> None:
    texts = ["short", "a somewhat longer sentence, so the batch needs padding"]
    ours = embed(embedder, texts).vectors
    np.testing.assert_allclose(ours, embedder.model.encode(texts), atol=1e-5)


def test_prompt_tokens_count_special_tokens(embedder: Embedder) -> None:
    assert embed(embedder, ["hello world"]).prompt_tokens == 4  # [CLS] hello world [SEP]


def test_normalize_false_returns_raw_pooled_vectors(embedder: Embedder) -> None:
    raw = embed(embedder, ["hello world"], normalize=False).vectors[0]
    unit = embed(embedder, ["hello world"]).vectors[0]
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 0.01
    np.testing.assert_allclose(raw / np.linalg.norm(raw), unit, atol=1e-6)


def test_dimensions_truncate_then_renormalize(embedder: Embedder) -> None:
    full = embed(embedder, ["hello world"], normalize=False).vectors[0]
    short = embed(embedder, ["hello world"], dimensions=64).vectors[0]
    assert short.shape == (64,)
    assert float(np.linalg.norm(short)) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-6)
    for bad in (0, 385):
        with pytest.raises(EmbedInputError, match="`dimensions` must be between 1 and 384") as err:
            embed(embedder, ["x"], dimensions=bad)
        assert err.value.param == "dimensions"


def test_too_long_input_errors_unless_truncated(embedder: Embedder) -> None:
    long_text = "word " * 400
    with pytest.raises(InputTooLongError, match=r"`inputs`\[1\] is 402 tokens long.*limit of 256") as err:
        embed(embedder, ["fine", long_text])
    assert isinstance(err.value, ValueError) and err.value.param == "inputs"
    result = embed(embedder, [long_text], truncate=True)
    assert result.prompt_tokens == 256
    left = embed(embedder, ["start " + long_text], truncate=True, truncation_direction="left").vectors[0]
    right = embed(embedder, ["start " + long_text], truncate=True).vectors[0]
    assert not np.allclose(left, right)


def test_empty_inputs_are_refused(embedder: Embedder) -> None:
    with pytest.raises(EmbedInputError, match="must not be empty"):
        embed(embedder, [])
    with pytest.raises(EmbedInputError, match=r"`inputs`\[1\] is an empty string"):
        embed(embedder, ["ok", ""])
    with pytest.raises(EmbedInputError, match="empty list of token ids"):
        embed(embedder, [[]])


def test_token_ids_are_embedded_as_given(embedder: Embedder) -> None:
    ids = [t.id for t in embedder.tokenize(["hello world"])[0]]
    from_ids = embed(embedder, [ids]).vectors[0]
    np.testing.assert_allclose(from_ids, embed(embedder, ["hello world"]).vectors[0], atol=1e-6)
    with pytest.raises(EmbedInputError, match="outside this model's vocabulary"):
        embed(embedder, [[101, 10**6, 102]])


def test_prompt_name_prepends_the_models_prompt(embedder: Embedder) -> None:
    emb = Embedder(embedder.model, model_name="minilm")
    emb.prompts = {"query": "query: "}
    emb.start()
    try:
        with_prompt = embed(emb, ["what is up"], prompt_name="query")
        np.testing.assert_allclose(with_prompt.vectors, embed(emb, ["query: what is up"]).vectors, atol=1e-6)
        with pytest.raises(EmbedInputError, match="'passage' is not one of this model's prompts") as err:
            embed(emb, ["x"], prompt_name="passage")
        assert err.value.param == "prompt_name"
    finally:
        emb.shutdown()


def test_tokenize_gives_offsets_and_special_flags(embedder: Embedder) -> None:
    [tokens] = embedder.tokenize(["Hello world"])
    assert [t.text for t in tokens] == ["[CLS]", "Hello", "world", "[SEP]"]
    assert [(t.start, t.stop, t.special) for t in tokens[1:3]] == [(0, 5, False), (6, 11, False)]
    assert tokens[0].special and tokens[0].start is None


def test_base64_is_little_endian_float32(embedder: Embedder) -> None:
    vec = embed(embedder, ["hello"]).vectors[0]
    encoded = encode_vector(vec, "base64")
    assert isinstance(encoded, str)
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(encoded), dtype="<f4"), vec)
    assert encode_vector(vec, "float") == pytest.approx(vec.tolist())


def test_plain_encoder_folder_gets_mean_pooling(
    minilm_model: Path, tmp_path: Path, embedder: Embedder
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        shutil.copy(minilm_model / name, plain / name)
    emb = Embedder.load(plain, model_name="plain")
    emb.start()
    try:
        assert not emb.model_normalizes
        texts = ["A man is eating food.", "The stock market fell."]
        # MiniLM is mean pooling + normalize, so the bare encoder gives the same unit vectors
        np.testing.assert_allclose(embed(emb, texts).vectors, embed(embedder, texts).vectors, atol=1e-5)
    finally:
        emb.shutdown()


def test_pickle_only_folder_is_refused(tmp_path: Path, minilm_model: Path) -> None:
    shutil.copy(minilm_model / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelLoadError, match="pickle"):
        Embedder.load(tmp_path)
