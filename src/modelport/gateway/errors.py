"""How the gateway says no: errors that carry headers, a client that left, and the error answer
in the dialect of the route called."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import Response

from modelport.protocol.errors import APIError
from modelport.protocol.http import error_response

RETRY_AFTER_S = 5
CLIENT_CLOSED = 499  # recorded (never sent) for a client that left before its answer began
UNAVAILABLE = frozenset({502, 503, 504})  # the endpoint could not serve: a fallback may


class ClientGone(Exception):
    """The client closed its connection before the answer began."""


@dataclass
class GatewayError(APIError):
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class NotDelivered(APIError):
    """No replica kept the request: none answered, or the one that took it refused it (5xx) or
    dropped it. Nothing is charged for it."""


def error_answer(err: APIError, path: str) -> Response:
    """The error in the route's shape; a 503 says whether (and when) to retry."""
    headers = dict(err.headers) if isinstance(err, GatewayError) else {}
    if err.status == 503:
        retryable = err.code not in ("endpoint_paused", "endpoint_failed")
        headers["x-should-retry"] = "true" if retryable else "false"
        if retryable:
            headers["retry-after"] = str(RETRY_AFTER_S)
    return error_response(path, err, headers)
