"""When and how the gateway translates a TGI/TEI/HF-task request for an OpenAI-only engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
from starlette.responses import Response

from modelport.gateway.metering import Call
from modelport.gateway.routing import EndpointView

GENERATE_PATHS = frozenset({"/", "/generate", "/generate_stream"})
EMBED_PATHS = frozenset({"/embed"})


@dataclass
class Translation:
    path: str
    body: bytes

    def response(
        self, upstream: httpx.Response, body: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]
    ) -> Response:
        raise NotImplementedError


def plan(call: Call, view: EndpointView) -> Translation | None:
    if call.path.startswith("/v1/") or call.method != "POST":
        return None
    if call.path in GENERATE_PATHS and "tgi" in view.apis:
        return None
    if call.path in EMBED_PATHS and "tei" in view.apis:
        return None
    return None
