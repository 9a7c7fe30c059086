"""TEI's `/rerank` and `/predict`, and the Cohere/Jina-shaped `/v1/rerank` vLLM serves, on the
task runners of a cross-encoder or a text classifier.

TEI: `/rerank` {query, texts, raw_scores, return_text, truncate} → [{index, score, text?}] best
first; `/predict` {inputs: text | [text, pair] | a list of those, raw_scores, truncate} → every
label's score, best first. `/v1/rerank` {query, documents, top_n, return_documents} →
{id, model, results: [{index, relevance_score, document?}], usage}. Each reports the documents
it scored in `x-modelport-units` and the tokens it read in `x-prompt-tokens`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from modelport.pipelines.base import TaskOutput, TaskRequest
from modelport.pipelines.runners.rerank import MAX_TEXTS, rerank_request
from modelport.protocol.errors import APIError
from modelport.server.body import json_body
from modelport.server.openai_routes import get_state
from modelport.server.state import ServerState
from modelport.server.task_routes import metering_headers, run_task

router = APIRouter()

RANKING = "text-ranking"
CLASSIFICATION = "text-classification"
_TRUNCATE_KEYS = frozenset({"truncate", "truncation_direction"})


def _object(body: Any, fields: frozenset[str], route: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise APIError(400, f"the {route} body must be a JSON object", error_type="validation")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise APIError(
            400, f"{route} does not take the field {unknown[0]!r}", param=unknown[0], error_type="validation"
        )
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise APIError(400, f"`{name}` must be true or false", param=name, error_type="validation")
    return value


def _with_documents(out: TaskOutput, documents: int) -> dict[str, str]:
    headers = metering_headers(out)
    units = f"documents={documents}"
    headers["x-modelport-units"] = (
        f"{headers['x-modelport-units']},{units}" if "x-modelport-units" in headers else units
    )
    return headers


@router.post("/rerank")
async def tei_rerank(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    state.require_tasks(RANKING)
    fields = frozenset({"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"})
    body = _object(await json_body(request), fields, "/rerank")
    query, texts = body.get("query"), body.get("texts")
    req = _ranking_request(query, texts, body, top_n=None, return_text=_flag(body, "return_text"))
    out = await run_task(state, req)
    return JSONResponse(out.body, headers=_with_documents(out, len(texts or [])))


@router.post("/v1/rerank")
async def openai_rerank(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    """The shape vLLM, Cohere and Jina serve; `documents` may be strings or {"text": ...}."""
    state.require_tasks(RANKING)
    fields = frozenset({"model", "query", "documents", "top_n", "return_documents", "truncate"})
    body = _object(await json_body(request), fields, "/v1/rerank")
    state.check_model_name(body.get("model"))
    documents = body.get("documents")
    if isinstance(documents, list):
        documents = [d.get("text") if isinstance(d, dict) else d for d in documents]
    top_n = body.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise APIError(400, "`top_n` must be a positive integer", param="top_n")
    if isinstance(top_n, int) and isinstance(documents, list):
        top_n = min(top_n, len(documents))
    req = _ranking_request(body.get("query"), documents, body, top_n=top_n, return_text=True)
    out = await run_task(state, req)
    keep = _flag(body, "return_documents")
    results = [
        {"index": r["index"], "relevance_score": r["score"]}
        | ({"document": {"text": r["text"]}} if keep else {})
        for r in out.body
    ]
    answer = {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": state.model_name,
        "results": results,
        "usage": {"total_tokens": out.input_tokens},
    }
    return JSONResponse(answer, headers=_with_documents(out, len(documents or [])))


def _ranking_request(
    query: Any, texts: Any, body: dict[str, Any], *, top_n: int | None, return_text: bool
) -> TaskRequest:
    if not isinstance(query, str) or not query:
        raise APIError(400, "`query` must be a non-empty string", param="query", error_type="validation")
    if (
        not isinstance(texts, list)
        or not 0 < len(texts) <= MAX_TEXTS
        or not all(isinstance(t, str) for t in texts)
    ):
        raise APIError(
            400, f"the texts to rank must be a list of 1 to {MAX_TEXTS} strings", error_type="validation"
        )
    return rerank_request(
        query,
        texts,
        raw_scores=_flag(body, "raw_scores"),
        return_text=return_text,
        truncate=_flag(body, "truncate"),
        top_n=top_n,
    )


@router.post("/predict")
async def tei_predict(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    """TEI's classification route: every label's score, best first; a list of inputs answers a list."""
    service = state.require_tasks(CLASSIFICATION)
    body = _object(await json_body(request), frozenset({"inputs", "raw_scores", "truncate",
                                                        "truncation_direction"}), "/predict")  # fmt: skip
    if _flag(body, "truncate"):
        raise APIError(
            400, "`truncate` is not supported: inputs over the model's limit are refused", param="truncate"
        )
    labels = len(getattr(service.runner, "labels", ())) or 1000
    parameters: dict[str, Any] = {"top_k": labels}
    if _flag(body, "raw_scores"):
        parameters["function_to_apply"] = "none"
    inputs: Any = body.get("inputs")
    batch = isinstance(inputs, list) and bool(inputs) and all(isinstance(i, list | tuple) for i in inputs)
    pair = isinstance(inputs, list) and len(inputs) == 2 and all(isinstance(i, str) for i in inputs)
    if pair:
        inputs = {"text": inputs[0], "text_pair": inputs[1]}
    elif batch:
        inputs = [
            {"text": i[0], "text_pair": i[1]} if len(i) == 2 else (i[0] if len(i) == 1 else i) for i in inputs
        ]
    out = await run_task(state, TaskRequest(inputs=inputs, parameters=parameters))
    scores = out.body
    single = not batch and isinstance(scores, list) and len(scores) == 1
    return JSONResponse(scores[0] if single else scores, headers=metering_headers(out))
