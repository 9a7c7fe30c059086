"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from modelport.engine.sampling import SamplingParams
from modelport.engine.sequence import SequenceOutput, TokenLogprob
from modelport.protocol.errors import APIError, Dialect, render
from modelport.protocol.openai import ChatCompletionRequest, CompletionRequest, usage
from modelport.server.body import model_body
from modelport.server.generation import (
    SeqResult,
    collect,
    encode_text,
    new_id,
    render_chat_prompt,
    sampling_params,
    start_stream,
    token_text,
    until_disconnect,
)
from modelport.server.state import ServerState

router = APIRouter()


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.mp
    return state


def sse(data: dict[str, Any] | str) -> bytes:
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {body}\n\n".encode()


@router.get("/v1/models")
async def list_models(state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": state.model_name,
                "object": "model",
                "created": state.created,
                "owned_by": "modelport",
                "root": state.model_path,
                "max_model_len": state.max_model_len,
            }
        ],
    }


def _chat_logprobs(state: ServerState, lps: list[TokenLogprob]) -> dict[str, Any]:
    def entry(tid: int, lp: float) -> dict[str, Any]:
        text = token_text(state, tid)
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    return {
        "content": [
            {**entry(t.token_id, t.logprob), "top_logprobs": [entry(i, v) for i, v in t.top]} for t in lps
        ],
        "refusal": None,
    }


def _sampling(
    body: ChatCompletionRequest | CompletionRequest,
    *,
    max_tokens: int | None,
    default_max_tokens: int,
    logprobs: int | None,
) -> SamplingParams:
    """The fields chat and completions share, converted at the edge into engine parameters."""
    return sampling_params(
        max_tokens=max_tokens,
        default_max_tokens=default_max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        seed=body.seed,
        stop=body.stop_list(),
        stop_token_ids=body.stop_token_ids,
        ignore_eos=body.ignore_eos,
        logprobs=logprobs,
        logit_bias=body.bias_map(),
        min_tokens=body.min_tokens,
    )


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, state: ServerState = Depends(get_state)
) -> JSONResponse | StreamingResponse:
    body = await model_body(request, ChatCompletionRequest)
    state.check_model_name(body.model)
    engine = state.require_llm()
    body.check_supported()
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    prompt_ids = await render_chat_prompt(state, messages, body.add_generation_prompt, body.template_kwargs())
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    # the default fills the context, but never past what the whole KV pool holds
    room = min(state.max_model_len, engine.pool_tokens)
    params = _sampling(
        body,
        max_tokens=max_tokens,
        default_max_tokens=max(1, room - len(prompt_ids)),
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
    )
    rid, created, model = new_id("chatcmpl"), int(time.time()), state.model_name
    if body.stream:
        outputs = await start_stream(engine, prompt_ids, params, body.n, rid)
        return StreamingResponse(
            _chat_stream(state, outputs, rid, created, model, body.n, body.include_usage(), body.logprobs),
            media_type="text/event-stream",
        )
    results = await until_disconnect(request, collect(engine, prompt_ids, params, body.n, rid))
    choices = [
        {
            "index": r.index,
            "message": {"role": "assistant", "content": r.text, "tool_calls": []},
            "logprobs": _chat_logprobs(state, r.logprobs) if body.logprobs else None,
            "finish_reason": r.finish_reason.value if r.finish_reason else None,
            "stop_reason": r.stop_reason,
        }
        for r in results
    ]
    completion = sum(len(r.token_ids) for r in results)
    return JSONResponse(
        {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage(len(prompt_ids), completion),
        }
    )


async def _chat_stream(
    state: ServerState,
    outputs: AsyncIterator[SequenceOutput],
    rid: str,
    created: int,
    model: str,
    n: int,
    include_usage: bool,
    want_logprobs: bool,
) -> AsyncIterator[bytes]:
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    opening = [
        {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        for i in range(n)
    ]

    def choice(out: SequenceOutput) -> dict[str, Any]:
        return {
            "index": out.index,
            "delta": {"content": out.text} if out.text else {},
            "logprobs": _chat_logprobs(state, out.logprobs) if want_logprobs and out.logprobs else None,
            "finish_reason": out.finish_reason.value if out.finish_reason else None,
        }

    async for chunk in _openai_sse(outputs, base, include_usage, opening, choice):
        yield chunk


async def _openai_sse(
    outputs: AsyncIterator[SequenceOutput],
    base: dict[str, Any],
    include_usage: bool,
    opening: list[dict[str, Any]],
    choice: Callable[[SequenceOutput], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The OpenAI SSE framing shared by chat and completions: opening chunks, one chunk per delta
    that carries text or a finish, an error event on failure, the usage chunk, then [DONE]."""
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    for c in opening:
        yield sse({**base, "choices": [c], **extra})
    prompt_tokens = completion_tokens = 0
    try:
        async for out in outputs:
            prompt_tokens = out.num_prompt_tokens
            completion_tokens += len(out.token_ids)
            if out.error:
                yield sse(render(APIError(500, f"generation failed: {out.error}"), Dialect.OPENAI))
                return
            if out.text or out.finish_reason is not None:
                yield sse({**base, "choices": [choice(out)], **extra})
    except APIError as exc:
        yield sse(render(exc, Dialect.OPENAI))
        return
    if include_usage:
        yield sse({**base, "choices": [], "usage": usage(prompt_tokens, completion_tokens)})
    yield sse("[DONE]")


def _completion_logprobs(state: ServerState, r: SeqResult, offset: int) -> dict[str, Any]:
    tokens = [token_text(state, t.token_id) for t in r.logprobs]
    offsets, pos = [], offset
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {
        "tokens": tokens,
        "token_logprobs": [t.logprob for t in r.logprobs],
        "top_logprobs": [{token_text(state, i): v for i, v in t.top} for t in r.logprobs],
        "text_offset": offsets,
    }


@router.post("/v1/completions", response_model=None)
async def completions(
    request: Request, state: ServerState = Depends(get_state)
) -> JSONResponse | StreamingResponse:
    body = await model_body(request, CompletionRequest)
    state.check_model_name(body.model)
    engine = state.require_llm()
    body.check_supported()
    prompts = [encode_text(state, p) if isinstance(p, str) else p for p in body.prompts()]
    if body.stream and len(prompts) > 1:
        raise APIError(400, "streaming supports one prompt per request", param="prompt")
    rid, created, model = new_id("cmpl"), int(time.time()), state.model_name

    params = _sampling(body, max_tokens=body.max_tokens, default_max_tokens=16, logprobs=body.logprobs)

    if body.stream:
        ids = prompts[0]
        outputs = await start_stream(engine, ids, params, body.n, rid)
        prefix = state.tokenizer.decode(ids) if body.echo else ""
        return StreamingResponse(
            _completion_stream(outputs, rid, created, model, body.include_usage(), prefix, body.n),
            media_type="text/event-stream",
        )

    async def run_all() -> list[tuple[list[int], list[SeqResult]]]:
        done = []
        for i, ids in enumerate(prompts):
            done.append((ids, await collect(engine, ids, params, body.n, f"{rid}-{i}")))
        return done

    runs = await until_disconnect(request, run_all())
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for p_index, (ids, results) in enumerate(runs):
        prompt_tokens += len(ids)
        prefix = str(state.tokenizer.decode(ids)) if body.echo else ""
        for r in results:
            completion_tokens += len(r.token_ids)
            choices.append(
                {
                    "index": p_index * body.n + r.index,
                    "text": prefix + r.text,
                    "logprobs": _completion_logprobs(state, r, len(prefix))
                    if body.logprobs is not None
                    else None,
                    "finish_reason": r.finish_reason.value if r.finish_reason else None,
                    "stop_reason": r.stop_reason,
                }
            )
    return JSONResponse(
        {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
        }
    )


async def _completion_stream(
    outputs: AsyncIterator[SequenceOutput],
    rid: str,
    created: int,
    model: str,
    include_usage: bool,
    prefix: str,
    n: int,
) -> AsyncIterator[bytes]:
    base = {"id": rid, "object": "text_completion", "created": created, "model": model}
    opening = (
        [{"index": i, "text": prefix, "logprobs": None, "finish_reason": None} for i in range(n)]
        if prefix
        else []
    )

    def choice(out: SequenceOutput) -> dict[str, Any]:
        reason = out.finish_reason.value if out.finish_reason else None
        return {"index": out.index, "text": out.text, "logprobs": None, "finish_reason": reason}

    async for chunk in _openai_sse(outputs, base, include_usage, opening, choice):
        yield chunk
