"""Embedding routes: TEI `/embed` and `/similarity`, OpenAI `/v1/embeddings`, and HF task payloads.

Handlers parse the wire model, call `Embedder.embed`, and turn engine errors into `APIError`s
with each API's status: OpenAI 400, TEI 422 (413 for too many inputs), 503 when the embedder
is down, 424/500 when the forward failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from modelport.engine.embedder import (
    EmbedBackendError,
    EmbedderUnavailable,
    EmbedInputError,
    EmbedResult,
    InputTooLongError,
)
from modelport.protocol import openai_embeddings as oai
from modelport.protocol import tei
from modelport.protocol.errors import APIError
from modelport.protocol.json_body import InvalidJSONBody, parse_json_body
from modelport.server.state import ServerState

router = APIRouter()

Api = Literal["openai", "tei"]
M = TypeVar("M", bound=BaseModel)


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.mp
    return state


@router.post("/embed")
async def embed(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    state.require_embedder()
    req = _parse(tei.EmbedRequest, await _json(request, "tei"), tei.EMBED_HINTS, "tei")
    return JSONResponse(await _tei_embed(state, req))


@router.post("/similarity")
async def similarity(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    state.require_embedder()
    body = await _json(request, "tei")
    if not isinstance(body, dict):
        raise _bad("tei", tei.SIMILARITY_HINTS["inputs"], "inputs")
    return JSONResponse(await _similarity(state, body))


@router.post("/v1/embeddings")
async def openai_embeddings(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    state.require_embedder()
    req = _parse(oai.EmbeddingRequest, await _json(request, "openai"), oai.HINTS, "openai")
    state.check_model_name(req.model)
    inputs = tei.as_batch(req.input)
    if len(inputs) > oai.MAX_INPUTS:
        raise _bad(
            "openai",
            f"`input` holds {len(inputs)} items, more than the limit of {oai.MAX_INPUTS}; "
            "split it into several requests",
            "input",
        )
    # OpenAI embeddings are always unit length
    result = await _run("openai", state, inputs, normalize=True, dimensions=req.dimensions)
    return JSONResponse(
        oai.embeddings_response(result.vectors, req.encoding_format, state.model_name, result.prompt_tokens)
    )


async def embed_task_payload(state: ServerState, body: Any) -> list[list[float]] | list[float]:
    """HF feature-extraction (`{"inputs": text(s), ...options}`) or sentence-similarity, posted to `/`."""
    state.require_embedder()
    if tei.is_similarity_payload(body):
        return await _similarity(state, body)
    if not isinstance(body, dict):
        raise _bad("tei", tei.EMBED_HINTS["inputs"], "inputs")
    try:
        req = tei.EmbedRequest.from_task_payload(body)
    except ValidationError as exc:
        raise _validation_error(exc, tei.EMBED_HINTS, "tei") from exc
    return await _tei_embed(state, req)


async def _tei_embed(state: ServerState, req: tei.EmbedRequest) -> list[list[float]]:
    inputs = _tei_batch(tei.as_batch(req.inputs))
    result = await _run(
        "tei",
        state,
        inputs,
        normalize=req.normalize,
        truncate=bool(req.truncate),
        truncation_direction=req.truncation_direction,
        prompt_name=req.prompt_name,
        dimensions=req.dimensions,
    )
    vectors: list[list[float]] = result.vectors.tolist()
    return vectors


async def _similarity(state: ServerState, body: dict[str, Any]) -> list[float]:
    try:
        req = tei.SimilarityRequest.from_task_payload(body)
    except ValidationError as exc:
        raise _validation_error(exc, tei.SIMILARITY_HINTS, "tei") from exc
    if not req.inputs.sentences:
        raise APIError(
            422, "`inputs.sentences` must not be empty", param="inputs.sentences", error_type="empty"
        )
    p = req.parameters
    texts = _tei_batch([req.inputs.source_sentence, *req.inputs.sentences])
    result = await _run(
        "tei",
        state,
        texts,
        normalize=True,
        truncate=bool(p.truncate),
        truncation_direction=p.truncation_direction,
        prompt_name=p.prompt_name,
    )
    scores = result.vectors[1:] @ result.vectors[0]  # unit vectors: dot product is the cosine
    return [float(x) for x in np.clip(scores, -1.0, 1.0)]


def _tei_batch(inputs: list[str | list[int]]) -> list[str | list[int]]:
    if not inputs:
        raise APIError(
            422, "`inputs` must not be empty; send at least one text", param="inputs", error_type="empty"
        )
    if len(inputs) > tei.MAX_CLIENT_BATCH_SIZE:
        raise APIError(
            413,
            f"batch size {len(inputs)} > maximum allowed batch size {tei.MAX_CLIENT_BATCH_SIZE}; "
            "split the inputs into several requests",
            param="inputs",
            error_type="validation",
        )
    return inputs


async def _run(
    api: Api, state: ServerState, inputs: Sequence[str | Sequence[int]], **options: Any
) -> EmbedResult:
    """Call the embedder and give its errors the calling API's status and field names."""
    embedder = state.require_embedder()
    try:
        return await embedder.embed(inputs, **options)
    except InputTooLongError as exc:
        if api == "tei":
            raise _bad(api, str(exc), "inputs") from exc
        raise _bad(
            api,
            f"`input`[{exc.index}] is {exc.length} tokens long; this model's maximum context length "
            f"is {exc.limit} tokens. Shorten the input.",
            "input",
        ) from exc
    except EmbedInputError as exc:
        if api == "tei":
            raise _bad(api, str(exc), exc.param) from exc
        param = "input" if exc.param == "inputs" else exc.param
        raise _bad(api, str(exc).replace("`inputs`", "`input`"), param) from exc
    except EmbedderUnavailable as exc:
        raise APIError(503, str(exc), error_type="unhealthy") from exc
    except EmbedBackendError as exc:
        raise APIError(424 if api == "tei" else 500, str(exc), error_type="backend") from exc


def _bad(api: Api, message: str, param: str | None) -> APIError:
    return APIError(400 if api == "openai" else 422, message, param=param, error_type="validation")


async def _json(request: Request, api: Api) -> Any:
    try:
        return parse_json_body(await request.body())
    except InvalidJSONBody as exc:
        raise _bad(api, str(exc), None) from exc


def _parse(model: type[M], body: Any, hints: Mapping[str, str], api: Api) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc, hints, api) from exc


def _validation_error(exc: ValidationError, hints: Mapping[str, str], api: Api) -> APIError:
    first = exc.errors()[0]
    loc = [str(x) for x in first["loc"]]
    field = loc[0] if loc else None
    if first["type"] == "model_type":
        return _bad(api, "the request body must be a JSON object", None)
    if first["type"] == "missing":
        return _bad(api, f"`{'.'.join(loc)}` is required", ".".join(loc))
    if field is not None and field in hints:
        return _bad(api, hints[field], field)
    return _bad(api, f"invalid request: {'.'.join(loc)}: {first['msg']}", field)
