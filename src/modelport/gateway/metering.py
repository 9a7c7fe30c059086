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
that packs several tokens in one event is charged one); the prompt of such a stream is not
known to the gateway and counts 0.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

from modelport.protocol.errors import APIError, Dialect, dialect_for_path, render

OPENAI_STREAMING_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_USAGE = re.compile(rb'"usage"\s*:\s*\{|"generated_tokens"')  # an event that carries token counts
_TEXT = re.compile(rb'"(?:content|text)"\s*:\s*"[^"]')  # an event that carries a token (non-empty)
MAX_METERED_BODY = 16 * 1024 * 1024  # a larger JSON answer is relayed but not metered


@dataclass
class Call:
    """A client's request as the gateway forwards it."""

    method: str
    path: str
    query: str
    body: bytes
    stream: bool = False
    strip_usage: bool = False  # usage was added for metering: take it out of the answer

    @property
    def dialect(self) -> Dialect:
        return dialect_for_path(self.path)


def prepare(method: str, path: str, query: str, body: bytes, model_name: str | None = None) -> Call:
    """`model_name`: the one name the engine serves; an OpenAI call's `model` is set to it (the
    endpoint's URL already names the model, and vLLM or llama.cpp answer any other name 404)."""
    call = Call(method, path, query, body)
    call.stream = method == "POST" and path == "/generate_stream"
    rename = model_name is not None and path.startswith("/v1/") and b'"model"' in body
    if method != "POST" or (b'"stream"' not in body and not rename):
        return call
    try:
        data = json.loads(body)
    except ValueError:
        call.stream = False
        return call  # the engine answers the client's mistake in its own words
    if not isinstance(data, dict):
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
        if headers:  # TGI and TEI report counts in headers on non-streamed answers
            self.prompt_tokens = _int(headers.get("x-prompt-tokens") or headers.get("x-compute-tokens"))
            self.completion_tokens = _int(headers.get("x-generated-tokens"))

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
            with contextlib.suppress(ValueError):
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
            except ValueError:
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
