"""TEI's `/rerank` for engines that only have the Cohere-style `/v1/rerank` (vLLM, llama.cpp):
the request mapped (documents, top_n), the answer back in TEI's shape best first (with the texts
when asked), bad requests 422 without their texts, and engines with TEI left alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelport.gateway.metering import Call, prepare
from modelport.gateway.routing import EndpointView
from modelport.gateway.translation import translation_for
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointState, EndpointType, Intent

from .test_translation import answer, translate

TEXTS = ["Paris is in France.", "Bananas are yellow.", "The Eiffel tower is in Paris."]
# vLLM's /v1/rerank answer: results by relevance, each with the document it was given
VLLM = {
    "id": "rerank-1",
    "model": "m",
    "usage": {"total_tokens": 31},
    "results": [
        {"index": 2, "document": {"text": TEXTS[2]}, "relevance_score": 0.98},
        {"index": 0, "document": {"text": TEXTS[0]}, "relevance_score": 0.71},
        {"index": 1, "document": {"text": TEXTS[1]}, "relevance_score": 0.002},
    ],
}


def test_a_tei_rerank_goes_to_v1_rerank_with_every_document() -> None:
    t = translate("/rerank", {"query": "Where is Paris?", "texts": TEXTS, "truncate": True})
    assert (t.path, t.kind) == ("/v1/rerank", "rerank")
    assert json.loads(t.body) == {"model": "m", "query": "Where is Paris?", "documents": TEXTS, "top_n": 3}


def test_the_answer_comes_back_in_teis_shape_best_first() -> None:
    t = translate("/rerank", {"query": "Where is Paris?", "texts": TEXTS})
    shuffled = {**VLLM, "results": [VLLM["results"][1], VLLM["results"][2], VLLM["results"][0]]}
    status, ranked = answer(t, 200, json.dumps(shuffled).encode())
    assert status == 200
    assert ranked == [{"index": 2, "score": 0.98}, {"index": 0, "score": 0.71}, {"index": 1, "score": 0.002}]
    with_text = translate("/rerank", {"query": "q", "texts": TEXTS, "return_text": True})
    _, ranked = answer(with_text, 200, json.dumps(VLLM).encode())
    assert [(r["index"], r["text"]) for r in ranked] == [(2, TEXTS[2]), (0, TEXTS[0]), (1, TEXTS[1])]


def test_results_that_do_not_fit_the_request_are_left_out() -> None:
    t = translate("/rerank", {"query": "q", "texts": TEXTS[:2]})
    results = [{"index": 5, "relevance_score": 0.9}, {"index": 0, "relevance_score": "high"}, "x",
               {"index": 1, "relevance_score": 0.4}]  # fmt: skip
    _, ranked = answer(t, 200, json.dumps({"results": results}).encode())
    assert ranked == [{"index": 1, "score": 0.4}]
    _, broken = answer(t, 200, b'{"data": []}')
    assert broken["error_type"] == "generation" and "results" in broken["error"]


def test_engine_errors_come_back_in_teis_shape() -> None:
    t = translate("/rerank", {"query": "q", "texts": TEXTS})
    error = {"error": {"message": "the model does not support reranking", "type": "BadRequestError"}}
    status, body = answer(t, 400, json.dumps(error).encode())
    assert status == 422 and body == {
        "error": "the model does not support reranking",
        "error_type": "validation",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"texts": ["secret"]}, "query"),
        ({"query": "secret", "texts": []}, "texts"),
        ({"query": "secret", "texts": "secret"}, "texts"),
        ({"query": "secret", "texts": ["a", 3]}, "texts"),
        ({"query": "secret", "texts": ["a"], "raw_scores": True}, "raw_scores"),
    ],
)
def test_bad_rerank_requests_are_422_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as info:
        translate("/rerank", body)
    assert (info.value.status, info.value.param) == (422, param) and "secret" not in info.value.message


def test_an_engine_with_tei_gets_the_call_as_it_is_and_no_output_allowance_either_way() -> None:
    tei = EndpointView("default", "m", EndpointType.PROTECTED, Intent.ACTIVE, EndpointState.RUNNING, "",
                       task="text-ranking", apis=frozenset({"tei"}))  # fmt: skip
    assert translation_for(Call("POST", "/rerank", "", b'{"query": "q", "texts": ["a"]}'), tei) is None
    assert prepare("POST", "/rerank", "", b'{"query": "q", "texts": ["a"]}').output_allowance == 0
