"""Parse an OpenAI-style server-sent-events stream (``data: {...}`` lines, ``data: [DONE]``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamEvent:
    """What one ``data:`` line carried."""

    content: str = ""
    """Generated text in this chunk (completions ``text`` or chat ``delta.content``)."""
    completion_tokens: int | None = None
    """From a ``usage`` object, when the chunk has one."""
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    """The first choice's ``finish_reason``, in the chunk that ends it (``length``, ``stop``)."""
    error: str | None = None
    """An ``error`` object sent in-stream."""
    done: bool = False
    """``data: [DONE]``."""


def data_payload(line: str) -> str | None:
    """The payload of a ``data:`` line, None for other SSE lines (comments, event names, blanks)."""
    if not line.startswith("data:"):
        return None
    payload = line[len("data:") :]
    return payload[1:] if payload.startswith(" ") else payload


def choice_text(choice: dict[str, Any]) -> str:
    """Text of one streamed choice: completions put it in ``text``, chat in ``delta.content``."""
    text = choice.get("text")
    if isinstance(text, str):
        return text
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        if isinstance(content, str):
            return content
    message = choice.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, str):
            return content
    return ""


def parse_event(payload: str) -> StreamEvent:
    """One event from the payload of a ``data:`` line. Raises ValueError on malformed JSON."""
    payload = payload.strip()
    if payload == "[DONE]":
        return StreamEvent(done=True)
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed SSE payload: {payload[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"SSE payload is not an object: {payload[:200]!r}")
    if obj.get("error"):
        err = obj["error"]
        msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
        return StreamEvent(error=str(msg))
    choices = [c for c in obj.get("choices") or [] if isinstance(c, dict)]
    content = "".join(choice_text(c) for c in choices)
    reasons = [r for c in choices if isinstance(r := c.get("finish_reason"), str)]
    usage = obj.get("usage")
    completion_tokens = prompt_tokens = None
    if isinstance(usage, dict):
        ct, pt = usage.get("completion_tokens"), usage.get("prompt_tokens")
        completion_tokens = ct if isinstance(ct, int) else None
        prompt_tokens = pt if isinstance(pt, int) else None
    return StreamEvent(
        content=content,
        completion_tokens=completion_tokens,
        prompt_tokens=prompt_tokens,
        finish_reason=reasons[0] if reasons else None,
    )
