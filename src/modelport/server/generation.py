"""Shared by the OpenAI and TGI routes: prompts, sampling params, running and cancelling."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from modelport import envs
from modelport.engine.engine import EngineDeadError, LLMEngine, RequestRejected
from modelport.engine.sampling import InvalidSamplingParams, SamplingParams
from modelport.engine.sequence import FinishReason, SequenceOutput, TokenLogprob
from modelport.protocol.errors import APIError, bad_request
from modelport.server.state import ServerState

T = TypeVar("T")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def encode_text(state: ServerState, text: str) -> list[int]:
    ids: list[int] = state.tokenizer.encode(text, add_special_tokens=True)
    return ids


def chat_prompt_ids(
    state: ServerState,
    messages: list[dict[str, str]],
    add_generation_prompt: bool,
    template_kwargs: dict[str, Any] | None,
) -> list[int]:
    tok = state.tokenizer
    if not getattr(tok, "chat_template", None):
        raise bad_request(
            f"{state.model_name} has no chat template, so it cannot serve chat requests; "
            "use /v1/completions with a plain prompt, or add a chat_template to tokenizer_config.json",
            param="messages",
            code="no_chat_template",
        )
    try:
        text = tok.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=False, **(template_kwargs or {})
        )
    except Exception as exc:  # template errors are the caller's input (e.g. roles the template rejects)
        raise bad_request(
            f"the chat template could not render these messages: {exc}", param="messages"
        ) from exc
    ids: list[int] = tok.encode(str(text), add_special_tokens=False)
    return ids


# Chat templates render here, never on the event loop (a slow render would stall every request
# of the replica) nor on the engine's torch thread. Jinja cannot be stopped mid-render, so the
# work is bounded instead: two workers, a time limit per request, and only the endpoint's own
# template with allow-listed variables (protocol/openai.py) ever runs.
_TEMPLATE_WORKERS = 2
_template_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _template_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _template_pool
    if _template_pool is None:
        _template_pool = concurrent.futures.ThreadPoolExecutor(
            _TEMPLATE_WORKERS, thread_name_prefix="modelport-template"
        )
    return _template_pool


async def render_chat_prompt(
    state: ServerState,
    messages: list[dict[str, str]],
    add_generation_prompt: bool,
    template_kwargs: dict[str, Any] | None,
) -> list[int]:
    """`chat_prompt_ids` in a template worker, refused with 400 past the time limit. The time
    counts from submission, so a request queued behind slow renders is refused as well."""
    limit = envs.chat_template_timeout_s()
    future = _template_executor().submit(
        chat_prompt_ids, state, messages, add_generation_prompt, template_kwargs
    )
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout=limit)
    except TimeoutError as exc:
        future.cancel()  # still queued: never runs; already running: its result is dropped
        raise bad_request(
            f"the chat template took longer than {limit:g} s to render these messages",
            param="messages",
            code="chat_template_timeout",
        ) from exc


def sampling_params(
    *,
    max_tokens: int | None,
    default_max_tokens: int,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    seed: int | None = None,
    stop: list[str] | None = None,
    stop_token_ids: list[int] | None = None,
    ignore_eos: bool = False,
    logprobs: int | None = None,
    logit_bias: dict[int, float] | None = None,
    min_tokens: int = 0,
) -> SamplingParams:
    return SamplingParams(
        max_tokens=default_max_tokens if max_tokens is None else max_tokens,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        top_k=top_k or 0,
        min_p=min_p or 0.0,
        repetition_penalty=1.0 if repetition_penalty is None else repetition_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        seed=seed,
        stop=list(stop or []),
        stop_token_ids=list(stop_token_ids or []),
        ignore_eos=ignore_eos,
        logprobs=logprobs,
        logit_bias=dict(logit_bias or {}),
        min_tokens=min_tokens,
    )


def engine_error(exc: Exception) -> APIError:
    if isinstance(exc, InvalidSamplingParams):
        return bad_request(str(exc), param=exc.param)
    if isinstance(exc, RequestRejected):
        return bad_request(
            str(exc), param=exc.param, code="context_length_exceeded" if "context" in str(exc) else None
        )
    if isinstance(exc, EngineDeadError):
        return APIError(503, str(exc), error_type="healthcheck")
    raise exc


async def start_stream(
    engine: LLMEngine, prompt_ids: list[int], params: SamplingParams, n: int, request_id: str
) -> AsyncGenerator[SequenceOutput, None]:
    """Start generating and wait for the first delta, so a request the engine refuses becomes a
    clean 4xx before any response byte. The returned stream replays that delta first; closing
    or cancelling it aborts the request and frees its KV blocks."""
    gen = engine.generate(prompt_ids, params, n, request_id)
    try:
        first = await anext(gen)
    except (InvalidSamplingParams, RequestRejected, EngineDeadError) as exc:
        raise engine_error(exc) from exc
    return _replay(first, gen)


async def _replay(
    first: SequenceOutput, gen: AsyncGenerator[SequenceOutput, None]
) -> AsyncGenerator[SequenceOutput, None]:
    try:
        yield first
        async for out in gen:
            yield out
    finally:
        await gen.aclose()


@dataclass
class SeqResult:
    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_reason: str | int | None = None
    num_prompt_tokens: int = 0


async def collect(
    engine: LLMEngine, prompt_ids: list[int], params: SamplingParams, n: int, request_id: str
) -> list[SeqResult]:
    results = [SeqResult(i) for i in range(n)]
    async for out in await start_stream(engine, prompt_ids, params, n, request_id):
        r = results[out.index]
        r.text += out.text
        r.token_ids += out.token_ids
        r.logprobs += out.logprobs or []
        r.num_prompt_tokens = out.num_prompt_tokens
        if out.finish_reason is not None:
            if out.error:
                raise APIError(500, f"generation failed: {out.error}", error_type="generation")
            r.finish_reason, r.stop_reason = out.finish_reason, out.stop_reason
    return results


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work`` but cancel it (freeing its KV blocks) if the client goes away first."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if task.cancelled() or not task.done():
        raise APIError(499, "client closed the request")
    return task.result()


def token_text(state: ServerState, token_id: int) -> str:
    return str(state.tokenizer.decode([token_id]))


def is_special(state: ServerState, token_id: int) -> bool:
    return token_id in state.special_ids
