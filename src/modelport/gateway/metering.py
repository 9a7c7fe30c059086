"""What the gateway learns from the bodies it relays: whether a call streams, and its token usage.

On the way up, an OpenAI streaming call that did not ask for usage gets
`stream_options.include_usage` so the engine reports it; on the way down, the usage-only chunk
that this adds is dropped again, so the client sees exactly the stream it asked for. Everything
else passes byte for byte, as soon as a whole event has arrived (no batching). Bodies are only
parsed where a usage figure can be: non-streamed JSON answers once complete, and stream events
that mention usage or details.

A stream that ends without its usage (the client went away, the replica died) is charged the
tokens relayed so far: one per event that carries non-empty text, which is how the builtin
engine, vLLM, llama.cpp and TGI stream. That undercounts rather than overcharges (an engine
that packs several tokens in one event is charged one).

The gateway has no tokenizer, so before a call runs it estimates the call's tokens from the
request, conservatively (limits.py reserves them; the engine's own counts settle the charge):
- prompt: each text the request carries (chat messages, prompt, inputs, input, tools, ...) at
  ceil(UTF-8 bytes / 3) tokens (BPE vocabularies average about 4 bytes of English text per
  token), lists of token ids at one token each, plus 4 tokens per chat message and 3 per chat
  for the template's markers. A text body that is not JSON counts ceil(bytes / 3); an image,
  audio, raw-bytes or multipart body counts 0 (media are not tokens; the replica reports what
  it measured in `x-modelport-units`, below).
- output: max_completion_tokens, max_tokens or parameters.max_new_tokens, times n / best_of
  and the number of prompts in a /v1/completions list; without one, the API's own default (16
  on /v1/completions, 100 on TGI routes) or DEFAULT_OUTPUT_ALLOWANCE on chat; 0 on embedding,
  rerank, audio and image routes, and on the task routes (`/`, `/predict`) of an endpoint whose
  task does not generate text (GENERATING_TASKS).
When the engine never reports a call's prompt tokens (a stream cut before its usage chunk, a
client that left before a non-streamed answer) the prompt estimate is what is charged.

Work that is not tokens (seconds of audio, images, documents, pixels) comes from the replica in
the header `x-modelport-units: audio_seconds=3.25,images=1`: names outside UNIT_NAMES, negative
or non-finite numbers and headers longer than MAX_UNITS_HEADER are ignored.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from modelport.protocol.errors import APIError, Dialect, dialect_for_path, render

OPENAI_STREAMING_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_USAGE = re.compile(rb'"usage"\s*:\s*\{|"generated_tokens"')  # an event that carries token counts
_TEXT = re.compile(rb'"(?:content|text)"\s*:\s*"[^"]')  # an event that carries a token (non-empty)
MAX_METERED_BODY = 16 * 1024 * 1024  # a larger JSON answer is relayed but not metered

BYTES_PER_TOKEN = 3  # the estimate's bytes of text per prompt token (conservative: ~4 is usual)
MESSAGE_TOKENS = 4  # a chat template's markers around each message
CHAT_TOKENS = 3  # ... and the assistant turn it opens
DEFAULT_OUTPUT_ALLOWANCE = 512  # a chat call's output without max_tokens (engines default higher)
_DEFAULT_OUTPUT = {"/v1/completions": 16, "/generate": 100, "/generate_stream": 100, "/": 100}
EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/embed", "/embed_all", "/embed_sparse", "/similarity",
                             "/rerank", "/tokenize", "/decode"})  # fmt: skip
# routes whose answers are not output tokens the caller asked a number of
NO_OUTPUT_PATHS = EMBEDDING_PATHS | {"/v1/rerank", "/v1/score", "/v1/audio/transcriptions",
                                     "/v1/audio/translations", "/v1/images/generations"}  # fmt: skip
TASK_PATHS = frozenset({"/", "/predict"})  # what they produce is the endpoint's task's
# as translation.EMBEDDING_TASKS (which imports this module): `/` of such an endpoint embeds
EMBEDDING_TASKS = frozenset({"feature-extraction", "sentence-embeddings", "sentence-similarity"})
# tasks whose `/` produces output tokens (max_new_tokens applies); any other task's does not
GENERATING_TASKS = frozenset({"text-generation", "text2text-generation", "summarization", "translation",
                              "conversational"})  # fmt: skip
UNITS_HEADER = "x-modelport-units"
UNIT_NAMES = frozenset({"audio_seconds", "images", "documents", "pixels"})
MAX_UNITS_HEADER = 256  # characters: a longer header is ignored whole
_TEXT_FIELDS = ("messages", "prompt", "suffix", "inputs", "input", "tools", "functions", "query",
                "texts", "documents")  # fmt: skip


_NOT_JSON = object()


@dataclass
class Call:
    """A client's request as the gateway forwards it."""

    method: str
    path: str
    query: str
    body: bytes
    stream: bool = False
    strip_usage: bool = False  # usage was added for metering: take it out of the answer
    parsed: Any = field(default=_NOT_JSON, repr=False)  # the body, when it is JSON
    generates: bool = False  # the route produces output tokens (not an embedding)
    media: bool = False  # an image, audio, raw-bytes or multipart body: no prompt tokens to estimate

    # Estimated only when asked (a key with token limits, or a request the engine never reported
    # usage for): walking every text of a body is work most requests do not need.
    @functools.cached_property
    def prompt_estimate(self) -> int:
        """The request's prompt tokens, estimated before it runs."""
        if self.parsed is _NOT_JSON:
            return _text_tokens(len(self.body)) if self.method == "POST" and not self.media else 0
        return prompt_estimate(self.parsed)

    @functools.cached_property
    def output_allowance(self) -> int:
        """The most output tokens it may ask the engine for."""
        return output_allowance(self.parsed, self.path) if self.generates else 0

    @property
    def reserve(self) -> int:
        """The tokens the call may use: what admission reserves against the key's limits."""
        return self.prompt_estimate + self.output_allowance

    @property
    def dialect(self) -> Dialect:
        return dialect_for_path(self.path)


def prepare(
    method: str,
    path: str,
    query: str,
    body: bytes,
    model_name: str | None = None,
    task: str | None = "text-generation",
    media: bool = False,
) -> Call:
    """`model_name`: the one name the engine serves; an OpenAI call's `model` is set to it (the
    endpoint's URL already names the model, and vLLM or llama.cpp answer any other name 404).
    `task`: the endpoint's (`/` of a task that does not generate text produces no output tokens).
    `media`: the body is an image, audio, raw bytes or a multipart upload, passed on untouched."""
    call = Call(method, path, query, body, media=media)
    call.stream = method == "POST" and path == "/generate_stream"
    if method != "POST":
        return call
    if media:
        call.generates = generates(path, task)
        return call
    rename = model_name is not None and path.startswith("/v1/") and b'"model"' in body
    rewrite = b'"stream"' in body or rename
    try:
        data = json.loads(body)
    except RecursionError:
        raise APIError(400, "the request body nests JSON too deeply", error_type="validation") from None
    except ValueError:
        call.stream = call.stream and not rewrite
        return call  # the engine answers the client's mistake in its own words
    call.parsed = data
    call.generates = generates(path, task)
    if not rewrite or not isinstance(data, dict):
        return call
    changed = False
    if rename and isinstance(data.get("model"), str) and data["model"] != model_name:
        data["model"] = model_name
        changed = True
    if data.get("stream") is True:
        call.stream = True
        options = data.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage")
        openai_stream = path in OPENAI_STREAMING_PATHS and (options is None or isinstance(options, dict))
        if openai_stream and not wants_usage:
            data["stream_options"] = {**(options or {}), "include_usage": True}
            call.strip_usage = changed = True
    if changed:
        call.body = json.dumps(data).encode()
    return call


def generates(path: str, task: str | None) -> bool:
    """Whether a call on this route produces output tokens (its output allowance applies)."""
    if path in TASK_PATHS:
        return (task or "text-generation") in GENERATING_TASKS
    return path not in NO_OUTPUT_PATHS


def parse_units(value: str | None) -> dict[str, float] | None:
    """`audio_seconds=3.25,images=1` → {"audio_seconds": 3.25, "images": 1.0}; None when the
    header is absent, too long or names nothing countable. A name given twice keeps the last."""
    if not value or len(value) > MAX_UNITS_HEADER:
        return None
    units: dict[str, float] = {}
    for pair in value.split(","):
        name, sep, number = pair.partition("=")
        name = name.strip()
        if not sep or name not in UNIT_NAMES:
            continue
        try:
            amount = float(number)
        except ValueError:
            continue
        if math.isfinite(amount) and amount >= 0:
            units[name] = amount
    return units or None


def prompt_estimate(data: Any) -> int:
    """A request's prompt tokens, estimated from its parsed body (see the module's docstring)."""
    if isinstance(data, dict):
        fields = [data[name] for name in _TEXT_FIELDS if name in data]
        values = fields or [data]  # an API this does not know: all its texts count
        messages = data.get("messages")
        chat = len(messages) * MESSAGE_TOKENS + CHAT_TOKENS if isinstance(messages, list) else 0
    else:
        values, chat = [data], 0
    tokens, texts = chat, 0
    while values:  # iterative, so the depth of a body costs no stack
        value = values.pop()
        if isinstance(value, str):
            texts += len(value.encode())
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            tokens += 1  # a token id
        elif isinstance(value, list):
            values.extend(value)
        elif isinstance(value, dict):
            values.extend(value.values())
    return tokens + _text_tokens(texts)


def output_allowance(data: Any, path: str) -> int:
    """The most tokens a generating request may produce: its own limit times its choices."""
    options: dict[str, Any] = {}
    per_choice: int | None = None
    if isinstance(data, dict):
        if isinstance(data.get("parameters"), dict):
            options = data["parameters"]
        limits = (data.get("max_completion_tokens"), data.get("max_tokens"), options.get("max_new_tokens"))
        per_choice = next((n for n in map(_count, limits) if n is not None), None)
        choices = [data.get("n"), data.get("best_of"), options.get("best_of")]
        # /v1/completions runs each prompt of a list (texts, or lists of ids) as its own request
        prompt = data.get("prompt")
        prompts = len(prompt) if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) else 1
    else:
        choices, prompts = [], 1
    if per_choice is None:
        per_choice = _DEFAULT_OUTPUT.get(path, DEFAULT_OUTPUT_ALLOWANCE)
    return per_choice * prompts * max([1, *(_count(c) or 1 for c in choices)])


def _text_tokens(utf8_bytes: int) -> int:
    return math.ceil(utf8_bytes / BYTES_PER_TOKEN)


def _count(value: Any) -> int | None:
    """A non-negative integer the client sent, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def error_event(err: APIError, dialect: Dialect) -> bytes:
    """An error as the last event of a stream, in the shape the route's clients parse."""
    return b"data: " + json.dumps(render(err, dialect)).encode() + b"\n\n"


class Meter:
    """Relays an answer's bytes, picking out token usage (and stripping added usage chunks)."""

    def __init__(self, sse: bool, strip_usage: bool, headers: dict[str, str] | None = None) -> None:
        self.sse = sse
        self.strip_usage = strip_usage
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.relayed_tokens = 0  # token events passed on: what a stream cut short is charged
        self._reported = False  # the engine's own counts arrived (they win)
        self._pending = b""
        self._body: list[bytes] | None = None if sse else []
        self._size = 0
        self.units: dict[str, float] | None = None  # work that is not tokens (x-modelport-units)
        if headers:  # TGI and TEI report counts in headers on non-streamed answers
            self.prompt_tokens = _int(headers.get("x-prompt-tokens") or headers.get("x-compute-tokens"))
            self.completion_tokens = _int(headers.get("x-generated-tokens"))
            self.units = parse_units(headers.get(UNITS_HEADER))

    def feed(self, chunk: bytes) -> bytes:
        if not self.sse:
            if self._body is not None:
                self._size += len(chunk)
                if self._size > MAX_METERED_BODY:
                    self._body = None
                else:
                    self._body.append(chunk)
            return chunk
        data = self._pending + chunk
        ends = list(_EVENT_END.finditer(data))
        if not ends:
            self._pending = data
            return b""
        cut = ends[-1].end()
        complete, self._pending = data[:cut], data[cut:]
        self.relayed_tokens += len(_TEXT.findall(complete))
        if not self._reported:
            self.completion_tokens = self.relayed_tokens
        if not _USAGE.search(complete):
            return complete  # the common case: token events, passed on untouched
        out = []
        start = 0
        for end in ends:
            event = complete[start : end.end()]
            start = end.end()
            if self._event(event):
                out.append(event)
        return b"".join(out)

    def finish(self) -> bytes:
        """Call once the upstream body ended; returns any bytes still to send."""
        if self.sse:
            rest, self._pending = self._pending, b""
            return rest
        if self._body:
            with contextlib.suppress(ValueError, RecursionError):
                self._usage(json.loads(b"".join(self._body)))
        return b""

    def _event(self, event: bytes) -> bool:
        """Take usage from one SSE event; False when the event is to be dropped."""
        if not _USAGE.search(event):
            return True
        for line in event.splitlines():
            if not line.startswith(b"data:"):
                continue
            try:
                payload = json.loads(line[5:])
            except (ValueError, RecursionError):
                continue
            if not isinstance(payload, dict):
                continue
            self._usage(payload)
            if self.strip_usage and payload.get("usage") and payload.get("choices") == []:
                return False
        return True

    def _usage(self, payload: Any) -> None:
        if isinstance(payload, list):  # TGI "/" answers: [{"generated_text", "details"}]
            for item in payload:
                self._usage(item)
            return
        if not isinstance(payload, dict):
            return
        usage = payload.get("usage")
        if isinstance(usage, dict):
            if not self._reported:
                self._reported, self.completion_tokens = True, 0
            self.prompt_tokens = _int(usage.get("prompt_tokens")) or self.prompt_tokens
            self.completion_tokens = _int(usage.get("completion_tokens")) or self.completion_tokens
            return
        details = payload.get("details")
        if isinstance(details, dict) and "generated_tokens" in details:
            if not self._reported:
                self._reported, self.completion_tokens = True, 0
            self.completion_tokens += _int(details.get("generated_tokens"))


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
