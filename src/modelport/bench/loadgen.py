"""Closed-loop load generator for OpenAI-compatible servers: :func:`run_load`.

``num_requests`` requests are started at once and gated by one semaphore, so at most
``concurrency`` are in flight and a new one starts as soon as one finishes. Streaming responses
are read line by line (our own SSE parsing) to time the first content chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.prompts import make_prompts
from modelport.bench.result import BenchResult, RequestRecord
from modelport.bench.sse import choice_text, data_payload, parse_event

WARMUP_SEED_OFFSET = 1_000_003
OnRequestDone = Callable[[RequestRecord], None]
"""Called after each timed request (for progress bars)."""


class BenchError(Exception):
    """The run could not start: server unreachable, no model to send, bad answer to /v1/models."""


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def build_body(config: LoadConfig, model: str, prompt: str) -> dict[str, Any]:
    """The JSON body of one request."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": config.output_tokens,
        "temperature": 0.0,
        "stream": config.stream,
    }
    if config.endpoint is Endpoint.chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if config.ignore_eos:
        # not in the OpenAI spec; vLLM, modelport (and others) accept it so output lengths are fixed
        body["ignore_eos"] = True
    if config.stream:
        body["stream_options"] = {"include_usage": True}
    body.update(config.extra_body)
    return body


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def discover_model(client: httpx.AsyncClient, root: str, api_key: str | None) -> str:
    """The first model id of GET /v1/models."""
    try:
        resp = await client.get(f"{root}/v1/models", headers=auth_headers(api_key))
    except httpx.HTTPError as exc:
        raise BenchError(f"cannot reach {root}/v1/models: {_describe(exc)}") from exc
    if resp.status_code != 200:
        raise BenchError(f"GET {root}/v1/models answered {resp.status_code}: {resp.text[:300]}")
    try:
        data = resp.json().get("data") or []
        return str(data[0]["id"])
    except (ValueError, AttributeError, LookupError, TypeError) as exc:
        raise BenchError(f"GET {root}/v1/models has no model id: {resp.text[:300]}") from exc


@dataclass
class _Stream:
    """What one streaming response said."""

    ttft: float | None = None
    chunks: int = 0
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None

    def output_tokens(self, max_tokens: int) -> tuple[int, str]:
        """(count, where it came from): usage, else max_tokens when the stream ended at that
        limit (finish_reason "length"), else the number of content chunks."""
        if self.usage_tokens is not None:
            return self.usage_tokens, "usage"
        if self.finish_reason == "length":
            return max_tokens, "length"
        return self.chunks, "chunks"


async def _streamed(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], start: float
) -> _Stream:
    """The timing and counts of one streaming request."""
    out = _Stream()
    async with client.stream("POST", url, json=body, headers=headers) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode(errors="replace")
            out.error = f"HTTP {resp.status_code}: {text[:300]}"
            return out
        async for line in resp.aiter_lines():
            payload = data_payload(line)
            if payload is None:
                continue
            event = parse_event(payload)
            if event.done:
                break
            if event.error is not None:
                out.error = f"stream error: {event.error[:300]}"
                return out
            if event.content:
                if out.ttft is None:
                    out.ttft = time.perf_counter() - start
                out.chunks += 1
            if event.finish_reason is not None:
                out.finish_reason = event.finish_reason
            if event.completion_tokens is not None:
                out.usage_tokens = event.completion_tokens
            if event.prompt_tokens is not None:
                out.prompt_tokens = event.prompt_tokens
    if out.ttft is None:
        out.error = "stream ended without any content"
    return out


async def _unary(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, int | None, str, str | None]:
    """(output tokens, prompt tokens, where the count came from, error) of one non-streaming request."""
    resp = await client.post(url, json=body, headers=headers)
    if resp.status_code != 200:
        return 0, None, "usage", f"HTTP {resp.status_code}: {resp.text[:300]}"
    obj = resp.json()
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        pt = usage.get("prompt_tokens")
        return int(usage["completion_tokens"]), pt if isinstance(pt, int) else None, "usage", None
    # no usage: count whitespace-separated words of the text, a rough stand-in
    choices = obj.get("choices") if isinstance(obj, dict) else None
    text = "".join(choice_text(c) for c in choices or [] if isinstance(c, dict))
    return len(text.split()), None, "words", None


async def send_one(
    client: httpx.AsyncClient, config: LoadConfig, model: str, prompt: str, index: int, t0: float
) -> RequestRecord:
    """Send one request and time it; failures become a record with ``error`` set, never an exception."""
    url = config.root + config.endpoint.path
    body = build_body(config, model, prompt)
    headers = auth_headers(config.api_key)
    start = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    tokens_from: str | None = "usage"
    error: str | None
    try:
        if config.stream:
            stream = await _streamed(client, url, body, headers, start)
            ttft, prompt_tokens, error = stream.ttft, stream.prompt_tokens, stream.error
            finish_reason = stream.finish_reason
            if error is None:
                limit = body.get("max_tokens")
                tokens, tokens_from = stream.output_tokens(
                    limit if isinstance(limit, int) else config.output_tokens
                )
        else:
            tokens, prompt_tokens, tokens_from, error = await _unary(client, url, body, headers)
    except (httpx.HTTPError, ValueError, OSError) as exc:
        error = _describe(exc)
    end = time.perf_counter()
    return RequestRecord(
        index=index,
        start_s=start - t0,
        end_s=end - t0,
        ttft_s=ttft,
        output_tokens=tokens,
        prompt_tokens=prompt_tokens,
        error=error,
        finish_reason=finish_reason,
        tokens_from=tokens_from if error is None else None,
    )


async def _run_batch(
    client: httpx.AsyncClient,
    config: LoadConfig,
    model: str,
    prompts: list[str],
    on_done: OnRequestDone | None,
) -> tuple[list[RequestRecord], float]:
    semaphore = asyncio.Semaphore(config.concurrency)
    t0 = time.perf_counter()

    async def gated(index: int, prompt: str) -> RequestRecord:
        async with semaphore:
            record = await send_one(client, config, model, prompt, index, t0)
        if on_done is not None:
            on_done(record)
        return record

    records = await asyncio.gather(*(gated(i, p) for i, p in enumerate(prompts)))
    return list(records), t0


def _client(config: LoadConfig, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=config.concurrency + 1, max_keepalive_connections=config.concurrency + 1
    )
    return httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s), limits=limits, transport=transport)


async def run_load(
    config: LoadConfig,
    *,
    on_done: OnRequestDone | None = None,
    on_warmup_done: OnRequestDone | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BenchResult:
    """Run the load described by ``config`` and return its measurements.

    Raises :class:`BenchError` only when the run cannot start (no model id); failed requests
    are recorded in the result.
    """
    async with _client(config, transport) as client:
        model = config.model or await discover_model(client, config.root, config.api_key)
        if config.warmup:
            # other prompts than the timed ones, so a prefix cache gains nothing from the warmup
            warm = make_prompts(config.warmup, config.prompt_tokens, config.seed + WARMUP_SEED_OFFSET)
            await _run_batch(client, config, model, warm, on_warmup_done)
        prompts = make_prompts(config.num_requests, config.prompt_tokens, config.seed)
        records, _ = await _run_batch(client, config, model, prompts, on_done)
    first = min(r.start_s for r in records)
    last = max(r.end_s for r in records)
    return BenchResult(config=config, model=model, duration_s=last - first, records=records)
