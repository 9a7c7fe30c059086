"""TGI-compatible routes: /generate, /generate_stream, POST /, /info, /tokenize."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from modelport.engine.sampling import SamplingParams
from modelport.engine.sequence import FinishReason, SequenceOutput
from modelport.protocol.errors import APIError, Dialect, bad_request, render
from modelport.protocol.tgi import GenerateRequest
from modelport.server.body import json_body
from modelport.server.generation import (
    collect,
    encode_text,
    is_special,
    new_id,
    sampling_params,
    start_stream,
    token_text,
    until_disconnect,
)
from modelport.server.openai_routes import get_state
from modelport.server.state import ModelKind, ServerState
from modelport.version import __version__

router = APIRouter()


def _finish(reason: FinishReason | None, stop_reason: str | int | None) -> str:
    if reason is FinishReason.LENGTH:
        return "length"
    return "stop_sequence" if isinstance(stop_reason, str) else "eos_token"


def _prepare(state: ServerState, req: GenerateRequest) -> tuple[list[int], SamplingParams]:
    p = req.parameters
    p.check_supported()
    if not req.inputs:
        raise bad_request("`inputs` must not be empty", param="inputs")
    ids = encode_text(state, req.inputs)
    if p.truncate is not None and p.truncate > 0:
        ids = ids[-p.truncate :]
    if p.max_new_tokens is not None and p.max_new_tokens <= 0:
        raise bad_request("`max_new_tokens` must be strictly positive", param="max_new_tokens")
    s = req.sampling()
    params = sampling_params(
        max_tokens=p.max_new_tokens,
        default_max_tokens=100,
        temperature=s["temperature"],
        top_p=s["top_p"],
        top_k=s["top_k"],
        repetition_penalty=p.repetition_penalty,
        frequency_penalty=p.frequency_penalty or 0.0,
        seed=p.seed,
        stop=p.stop,
        logprobs=p.top_n_tokens or 0,
    )
    return ids, params


def _token(state: ServerState, tid: int, logprob: float | None) -> dict[str, Any]:
    return {"id": tid, "text": token_text(state, tid), "logprob": logprob, "special": is_special(state, tid)}


async def generate_payload(
    state: ServerState, req: GenerateRequest, request: Request
) -> tuple[dict[str, Any], dict[str, str]]:
    """The answer, and TGI's token-count headers (what the gateway meters when no details are asked)."""
    engine = state.require_llm()
    ids, params = _prepare(state, req)
    [r] = await until_disconnect(request, collect(engine, ids, params, 1, new_id("gen")))
    text = (req.inputs + r.text) if req.parameters.return_full_text else r.text
    out: dict[str, Any] = {"generated_text": text}
    if req.parameters.details:
        details: dict[str, Any] = {
            "finish_reason": _finish(r.finish_reason, r.stop_reason),
            "generated_tokens": len(r.token_ids),
            "seed": req.parameters.seed,
            "prefill": [{"id": t, "text": token_text(state, t), "logprob": None} for t in ids]
            if req.parameters.decoder_input_details
            else [],
            "tokens": [_token(state, t.token_id, t.logprob) for t in r.logprobs],
        }
        if req.parameters.top_n_tokens:
            details["top_tokens"] = [[_token(state, i, v) for i, v in t.top] for t in r.logprobs]
        out["details"] = details
    return out, {"x-prompt-tokens": str(len(ids)), "x-generated-tokens": str(len(r.token_ids))}


def _parse(body: Any) -> GenerateRequest:
    try:
        return GenerateRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise APIError(422, f"invalid request: {where}: {first['msg']}", param=where) from exc


@router.post("/generate")
async def generate(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    req = _parse(await json_body(request))
    payload, counts = await generate_payload(state, req, request)
    return JSONResponse(payload, headers=counts)


@router.post("/generate_stream")
async def generate_stream(request: Request, state: ServerState = Depends(get_state)) -> StreamingResponse:
    return await _stream_response(state, _parse(await json_body(request)))


@router.post("/", response_model=None)
async def root(request: Request, state: ServerState = Depends(get_state)) -> Response:
    """TGI's compat route, which is also where HF task payloads (`{"inputs", "parameters"}`) land."""
    if state.kind is ModelKind.TASK:
        from modelport.server.task_routes import task_root

        return await task_root(request, state)
    body = await json_body(request)
    if state.kind is ModelKind.EMBED:
        from modelport.server.embed_routes import embed_task_payload

        return JSONResponse(await embed_task_payload(state, body))
    req = _parse(body)
    if req.stream:
        return await _stream_response(state, req)
    payload, counts = await generate_payload(state, req, request)
    return JSONResponse([payload], headers=counts)


async def _stream_response(state: ServerState, req: GenerateRequest) -> StreamingResponse:
    engine = state.require_llm()
    ids, params = _prepare(state, req)
    outputs = await start_stream(engine, ids, params, 1, new_id("gen"))
    # the prompt's size as TGI sends it; the generated count comes in the last event's details
    headers = {"x-prompt-tokens": str(len(ids))}
    events = _tgi_events(state, req, outputs)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _tgi_events(
    state: ServerState, req: GenerateRequest, outputs: AsyncIterator[SequenceOutput]
) -> AsyncIterator[bytes]:
    text = ""
    index = 0

    async for out in outputs:
        if out.error:
            yield b"data:" + json.dumps(render(APIError(500, out.error), Dialect.TGI)).encode() + b"\n\n"
            return
        text += out.text
        if not out.token_ids and out.finish_reason is None:
            continue
        tid = out.token_ids[0] if out.token_ids else None
        lp = out.logprobs[0].logprob if out.logprobs else None
        token = (
            _token(state, tid, lp)
            if tid is not None
            else {"id": 0, "text": "", "logprob": None, "special": True}
        )
        token["text"] = out.text  # the text this event adds, as held back for stop strings
        index += 1
        event: dict[str, Any] = {
            "index": index,
            "token": token,
            "top_tokens": None,
            "generated_text": None,
            "details": None,
        }
        if out.finish_reason is not None:
            full = (req.inputs + text) if req.parameters.return_full_text else text
            event["generated_text"] = full
            event["details"] = {
                "finish_reason": _finish(out.finish_reason, out.stop_reason),
                "generated_tokens": out.num_output_tokens,
                "seed": req.parameters.seed,
                "input_length": out.num_prompt_tokens,
            }
        yield b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


@router.get("/info")
async def info(state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return {
        "model_id": state.model_name,
        "model_sha": None,
        "model_dtype": str(state.llm.loaded.dtype).removeprefix("torch.") if state.llm else None,
        "model_device_type": state.llm.loaded.device.type if state.llm else None,
        "model_pipeline_tag": "text-generation" if state.kind is ModelKind.GENERATE else "feature-extraction",
        "max_concurrent_requests": state.llm.config.max_num_seqs if state.llm else 512,
        "max_batch_tokens": state.llm.config.max_num_batched_tokens if state.llm else None,
        "max_best_of": 1,
        "max_stop_sequences": 16,
        # a generative model needs room for at least one new token; an encoder reads its whole window
        "max_input_tokens": state.max_model_len - (1 if state.llm else 0),
        "max_total_tokens": state.max_model_len,
        "max_input_length": state.max_model_len - 1,
        "validation_workers": 1,
        "max_client_batch_size": 32,
        "router": "modelport",
        "version": __version__,
        "sha": None,
        "docker_label": None,
    }


@router.post("/tokenize")
async def tokenize(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    body = await json_body(request)
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if state.embedder is not None:  # TEI's shape: one token list per input, special tokens flagged
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise APIError(
                422,
                "`inputs` must be a non-empty string or list of strings",
                param="inputs",
                error_type="tokenizer",
            )
        add_special = bool(body.get("add_special_tokens", True))
        return JSONResponse(
            [[t.__dict__ for t in toks] for toks in state.embedder.tokenize(texts, add_special)]
        )
    if not isinstance(inputs, str) or not inputs:
        raise APIError(422, "`inputs` must be a non-empty string", param="inputs", error_type="tokenizer")
    enc = state.tokenizer(inputs, return_offsets_mapping=True, add_special_tokens=True)
    return JSONResponse(
        [
            {"id": tid, "text": inputs[s:e], "start": s, "stop": e}
            for tid, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
    )
