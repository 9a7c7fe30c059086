"""TGI, TEI and HF-task requests for engines that only speak OpenAI (vLLM, llama.cpp, SGLang).

`translation_for` decides from the route called and the APIs the endpoint's engine has: `/generate`,
`/generate_stream` and the task route `/` (text-generation) become `/v1/completions`; `/embed`
and `/` (feature-extraction) become `/v1/embeddings`; TEI's `/rerank` becomes the Cohere-style
`/v1/rerank` (vLLM, llama.cpp) and its answer TEI's `[{index, score, text?}]`, best first.
Answers come back in the shape the
`text-generation` client and huggingface_hub's InferenceClient parse, streaming included:
each OpenAI chunk becomes one TGI token event as it arrives; the last event carries the whole
text and the details. Token ids and logprobs are not in OpenAI answers, so details carry
`id: 0` and no per-token list. Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from modelport.gateway.metering import Call
from modelport.gateway.relayed_response import RelayedResponse
from modelport.gateway.routing import EndpointView
from modelport.gateway.upstream import UpstreamResponse
from modelport.protocol.errors import APIError, Dialect, error_message, render, tgi_status

GENERATE_PATHS = frozenset({"/", "/generate", "/generate_stream"})
EMBEDDING_TASKS = frozenset({"feature-extraction", "sentence-embeddings", "sentence-similarity"})
DEFAULT_MAX_NEW_TOKENS = 100
_FINISH = {"length": "length", "stop": "eos_token"}
_SAMPLING = ("temperature", "top_p", "top_k", "typical_p")


def translation_for(call: Call, view: EndpointView) -> Translation | None:
    """The translation a call needs on this endpoint, or None to forward it as it is."""
    if call.method != "POST" or call.path.startswith("/v1/"):
        return None
    if call.path == "/rerank":
        return None if "tei" in view.apis else _rerank(call, view.name)
    embed = call.path == "/embed" or (call.path == "/" and view.task in EMBEDDING_TASKS)
    if embed:
        return None if "tei" in view.apis else _embedding(call, view.name)
    if call.path in GENERATE_PATHS and "tgi" not in view.apis:
        return _generation(call, view.name)
    return None


@dataclass
class Translation:
    path: str  # the OpenAI route the request goes to
    body: bytes
    kind: str  # generate | embed | rerank
    stream: bool = False
    list_answer: bool = False  # the task route "/" answers [{"generated_text": ...}]
    details: bool = False
    prefix: str = ""  # return_full_text: the prompt, put back in front of the answer
    seed: int | None = None
    texts: tuple[str, ...] = ()  # rerank: the documents, for return_text
    return_text: bool = False

    def response(
        self, upstream: UpstreamResponse, body: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]
    ) -> Response:
        if upstream.status_code >= 400:
            status = tgi_status(APIError(upstream.status_code, ""))
            headers = {"content-type": "application/json"}
            return RelayedResponse(self._error(upstream.status_code, body), status, headers, on_close)
        if self.stream:
            headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
            return RelayedResponse(self.events(body), 200, headers, on_close)
        return RelayedResponse(self._whole(body), 200, {"content-type": "application/json"}, on_close)

    async def events(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """TGI stream events from an OpenAI completion stream, one per chunk, as they come."""
        stream = TgiStream(self.prefix, self.seed)
        async for chunk in body:
            out = stream.feed(chunk)
            if out:
                yield out
        tail = stream.close()
        if tail:
            yield tail

    async def _whole(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        raw = b"".join([chunk async for chunk in body])
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError):
            yield json.dumps(render(APIError(502, "the engine's answer was not JSON"), Dialect.TGI)).encode()
            return
        if self.kind == "rerank":
            out = self._ranked(answer)
        else:
            out = self._embeddings(answer) if self.kind == "embed" else self._generated(answer)
        yield json.dumps(out).encode()

    async def _error(self, status: int, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        raw = b"".join([chunk async for chunk in body])
        yield json.dumps(render(APIError(status, error_message(raw, status)), Dialect.TGI)).encode()

    def _generated(self, answer: dict[str, Any]) -> Any:
        choice = (answer.get("choices") or [{}])[0]
        out: dict[str, Any] = {"generated_text": self.prefix + str(choice.get("text") or "")}
        if self.details:
            usage = answer.get("usage") or {}
            out["details"] = {
                "finish_reason": finish_reason(choice),
                "generated_tokens": int(usage.get("completion_tokens") or 0),
                "seed": self.seed,
                "prefill": [],
                "tokens": [],
            }
        return [out] if self.list_answer else out

    def _ranked(self, answer: Any) -> Any:
        """Cohere/vLLM `{results: [{index, relevance_score}]}` → TEI `[{index, score, text?}]`,
        best first (as TEI answers, whatever order the engine used)."""
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            return render(APIError(502, "the engine's rerank answer has no results"), Dialect.TGI)
        ranked = []
        for result in results:
            if not isinstance(result, dict):
                continue
            index, score = result.get("index"), result.get("relevance_score")
            if not isinstance(index, int) or not isinstance(score, int | float) or isinstance(score, bool):
                continue
            if not 0 <= index < len(self.texts):
                continue
            row: dict[str, Any] = {"index": index, "score": float(score)}
            if self.return_text:
                row["text"] = self.texts[index]
            ranked.append(row)
        return sorted(ranked, key=lambda row: -row["score"])

    def _embeddings(self, answer: dict[str, Any]) -> list[list[float]]:
        rows = sorted(answer.get("data") or [], key=lambda row: row.get("index", 0))
        return [row["embedding"] for row in rows]


@dataclass
class TgiStream:
    """Incremental OpenAI-completion-SSE → TGI-SSE; the finishing chunk is held back until the
    usage chunk (or [DONE]) so the last event can carry the generated token count."""

    prefix: str = ""
    seed: int | None = None
    text: list[str] = field(default_factory=list)
    count: int = 0
    finish: tuple[str, str] | None = None  # (last text, TGI finish reason)
    generated_tokens: int | None = None
    done: bool = False
    _pending: bytes = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        return b"".join(self._line(line.strip()) for line in lines)

    def close(self) -> bytes:
        rest = self._line(self._pending.strip())
        self._pending = b""
        return rest + self._final()

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:") or self.done:
            return b""
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return self._final()
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            return b""
        if not isinstance(event, dict):
            return b""
        if "error" in event:
            self.done = True
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            return _sse({"error": str(message), "error_type": "generation"})
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            self.generated_tokens = int(usage["completion_tokens"])
        out = b""
        for choice in event.get("choices") or []:
            text = str(choice.get("text") or "")
            if choice.get("finish_reason"):
                self.finish = (text, finish_reason(choice))
                self.text.append(text)
            elif text:
                self.text.append(text)
                out += self._token(text, None)
        if self.finish is not None and self.generated_tokens is not None:
            out += self._final()
        return out

    def _token(self, text: str, final: dict[str, Any] | None) -> bytes:
        self.count += 1
        event: dict[str, Any] = {
            "index": self.count,
            "token": {"id": 0, "text": text, "logprob": 0.0, "special": False},
            "top_tokens": None,
            "generated_text": None,
            "details": None,
        }
        if final is not None:
            event["generated_text"] = self.prefix + "".join(self.text)
            event["details"] = final
        return _sse(event)

    def _final(self) -> bytes:
        if self.done or self.finish is None:
            return b""
        self.done = True
        text, reason = self.finish
        tokens = self.generated_tokens if self.generated_tokens is not None else self.count + 1
        return self._token(text, {"finish_reason": reason, "generated_tokens": tokens, "seed": self.seed})


def finish_reason(choice: dict[str, Any]) -> str:
    """OpenAI finish → TGI: a stop *string* (vLLM's stop_reason) is a stop sequence."""
    if choice.get("finish_reason") == "stop" and isinstance(choice.get("stop_reason"), str):
        return "stop_sequence"
    return _FINISH.get(str(choice.get("finish_reason")), "eos_token")


def _sse(event: dict[str, Any]) -> bytes:
    return b"data:" + json.dumps(event).encode() + b"\n\n"


def _invalid(message: str, param: str | None = None) -> APIError:
    return APIError(422, message, param=param, error_type="validation")


def _request(call: Call) -> dict[str, Any]:
    try:
        body = json.loads(call.body or b"null")
    except (ValueError, RecursionError):
        raise _invalid("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    return body


def _generation(call: Call, model: str) -> Translation:
    body = _request(call)
    prompt = body.get("inputs")
    if not isinstance(prompt, str):
        raise _invalid("inputs must be a string", "inputs")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _invalid("parameters must be an object", "parameters")
    _check_types(params)
    if (params.get("best_of") or 1) > 1:
        raise _invalid("best_of > 1 is not supported by this endpoint's engine", "best_of")
    for unsupported in ("grammar", "watermark", "adapter_id"):
        if params.get(unsupported):
            raise _invalid(f"{unsupported} is not supported by this endpoint's engine", unsupported)
    stream = call.path == "/generate_stream" or body.get("stream") is True
    openai: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": _max_new_tokens(params),
        "stream": stream,
    }
    sampling = bool(params.get("do_sample")) or any(params.get(k) is not None for k in _SAMPLING)
    openai["temperature"] = (params.get("temperature") or 1.0) if sampling else 0.0
    for tgi_name, openai_name in (("top_p", "top_p"), ("top_k", "top_k"), ("seed", "seed"),
                                  ("repetition_penalty", "repetition_penalty"),
                                  ("frequency_penalty", "frequency_penalty")):  # fmt: skip
        if params.get(tgi_name) is not None:
            openai[openai_name] = params[tgi_name]
    stop = params.get("stop")
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _invalid("stop must be a list of strings", "stop")
        openai["stop"] = stop
    if stream:
        openai["stream_options"] = {"include_usage": True}
    seed = params.get("seed")
    return Translation(
        path="/v1/completions",
        body=json.dumps(openai).encode(),
        kind="generate",
        stream=stream,
        list_answer=call.path == "/",
        details=bool(params.get("details")),
        prefix=prompt if params.get("return_full_text") else "",
        seed=seed if isinstance(seed, int) else None,
    )


_INTS = ("best_of", "top_k", "seed", "max_new_tokens")
_NUMBERS = ("temperature", "top_p", "typical_p", "repetition_penalty", "frequency_penalty")


def _check_types(params: dict[str, Any]) -> None:
    """Numbers where TGI takes numbers: a string here is the client's mistake, answered as 422."""
    for name in _INTS:
        value = params.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise _invalid(f"{name} must be an integer", name)
    for name in _NUMBERS:
        value = params.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise _invalid(f"{name} must be a number", name)


def _max_new_tokens(params: dict[str, Any]) -> int:
    value = params.get("max_new_tokens")
    if value is None:
        return DEFAULT_MAX_NEW_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid("max_new_tokens must be a positive integer", "max_new_tokens")
    return value


def _embedding(call: Call, model: str) -> Translation:
    body = _request(call)
    inputs = body.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise _invalid("inputs must be a string or a non-empty list of strings", "inputs")
    if body.get("normalize") is False:
        raise _invalid("normalize=false is not supported by this endpoint's engine", "normalize")
    openai = {"model": model, "input": inputs}
    return Translation(path="/v1/embeddings", body=json.dumps(openai).encode(), kind="embed")


def _rerank(call: Call, model: str) -> Translation:
    """TEI `{query, texts, raw_scores, return_text, truncate}` → `{model, query, documents,
    top_n}`. The engine's scores are its relevance scores (already through the model's
    activation), so raw_scores=true is refused; `truncate` is left to the engine's own limits."""
    body = _request(call)
    query, texts = body.get("query"), body.get("texts")
    if not isinstance(query, str):
        raise _invalid("query must be a string", "query")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid("texts must be a non-empty list of strings", "texts")
    if body.get("raw_scores") is True:
        raise _invalid("raw_scores=true is not supported by this endpoint's engine", "raw_scores")
    openai = {"model": model, "query": query, "documents": texts, "top_n": len(texts)}
    return Translation(
        path="/v1/rerank",
        body=json.dumps(openai).encode(),
        kind="rerank",
        texts=tuple(texts),
        return_text=body.get("return_text") is True,
    )
