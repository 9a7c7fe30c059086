"""A request's texts, for an endpoint that opted in to keeping them (traffic.recordText).

The gateway keeps the body the client sent and collects the completion from the answer the
replica relays: OpenAI chat (`delta.content`, `message.content`), completions (`text`) and TGI
(`token.text` when streamed, `generated_text` otherwise), per choice. Only opted-in requests
pay for this parsing; nothing here is ever logged.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from modelport.ledger.audit_chain import text_digest
from modelport.store.records import RequestText

_EVENT_END = re.compile(rb"\r?\n\r?\n")
MAX_TEXT_BYTES = 1024 * 1024  # of a request body, and of a completion: beyond, kept cut and marked
CUT_MARK = "…[cut: over 1 MiB]"


class Transcript:
    def __init__(self, request_body: bytes, retention_days: float) -> None:
        self.request = _cut(request_body.decode("utf-8", errors="replace"))
        self.retention_days = retention_days
        self.sse: bool | None = None
        self._choices: dict[int, list[str]] = {}
        self._size = 0
        self._pending = b""
        self._body: list[bytes] = []

    def feed(self, chunk: bytes, sse: bool) -> None:
        """Take a chunk of the replica's answer (as the gateway received it)."""
        self.sse = sse
        if not sse:
            if self._size <= MAX_TEXT_BYTES * 4:  # a JSON answer is parsed once it has ended
                self._body.append(chunk)
                self._size += len(chunk)
            return
        data = self._pending + chunk
        ends = list(_EVENT_END.finditer(data))
        if not ends:
            self._pending = data
            return
        cut = ends[-1].end()
        complete, self._pending = data[:cut], data[cut:]
        for line in complete.splitlines():
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                try:
                    self._take(json.loads(line[5:]), streamed=True)
                except (ValueError, RecursionError):
                    continue

    def completion(self) -> str:
        """Each choice's text, in choice order, as a JSON list (empty: no text came back)."""
        if self.sse is False and self._body:
            with contextlib.suppress(ValueError, RecursionError):
                self._take(json.loads(b"".join(self._body)), streamed=False)
            self._body = []
        texts = [_cut("".join(self._choices[i])) for i in sorted(self._choices)]
        return json.dumps(texts, ensure_ascii=False)

    def kept(self, request_id: str, namespace: str, endpoint: str, at: datetime) -> RequestText:
        """The record to store: both texts, until when they are kept, and their digest."""
        completion = self.completion()
        return RequestText(
            request_id=request_id,
            namespace=namespace,
            endpoint=endpoint,
            at=at,
            expires_at=at + timedelta(days=self.retention_days),
            request=self.request,
            completion=completion,
            digest=text_digest(request_id, self.request, completion),
        )

    def _add(self, index: Any, text: Any) -> None:
        if isinstance(text, str) and text:
            self._choices.setdefault(index if isinstance(index, int) else 0, []).append(text)

    def _take(self, payload: Any, streamed: bool) -> None:
        if isinstance(payload, list):  # TGI "/": [{"generated_text": ...}, ...]
            for i, item in enumerate(payload):
                if isinstance(item, dict) and not streamed:
                    self._add(i, item.get("generated_text"))
            return
        if not isinstance(payload, dict):
            return
        for choice in payload.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            for part in ("delta", "message"):
                message = choice.get(part)
                if isinstance(message, dict):
                    self._add(index, message.get("content"))
            self._add(index, choice.get("text"))
        token = payload.get("token")
        if streamed and isinstance(token, dict) and not token.get("special"):
            self._add(0, token.get("text"))  # TGI stream; its last event repeats the whole text
        if not streamed:
            self._add(0, payload.get("generated_text"))


def _cut(text: str) -> str:
    if len(text.encode()) <= MAX_TEXT_BYTES:
        return text
    return text.encode()[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore") + CUT_MARK
