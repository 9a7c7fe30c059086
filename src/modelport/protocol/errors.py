"""Errors in each API's own shape.

An `APIError` carries what went wrong once; `render` turns it into the body the calling
client understands: OpenAI ``{"error": {message, type, param, code}}`` on ``/v1/*``, TGI/TEI
``{"error", "error_type"}`` elsewhere. Messages never echo prompt text.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class Dialect(enum.Enum):
    OPENAI = "openai"
    TGI = "tgi"  # also TEI: same flat shape


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


@dataclass
class APIError(Exception):
    status: int
    message: str
    param: str | None = None
    code: str | None = None
    # TGI/TEI error_type: validation, generation, overloaded, healthcheck, tokenizer, backend
    error_type: str | None = None

    def __str__(self) -> str:
        return self.message


def dialect_for_path(path: str) -> Dialect:
    return Dialect.OPENAI if path.startswith("/v1/") or path == "/v1" else Dialect.TGI


def render(err: APIError, dialect: Dialect) -> dict[str, Any]:
    if dialect is Dialect.OPENAI:
        etype = _OPENAI_TYPES.get(
            err.status, "server_error" if err.status >= 500 else "invalid_request_error"
        )
        return {"error": {"message": err.message, "type": etype, "param": err.param, "code": err.code}}
    etype = err.error_type or (
        "validation"
        if err.status in (400, 413, 422)
        else "overloaded"
        if err.status == 429
        else "healthcheck"
        if err.status == 503
        else "generation"
    )
    return {"error": err.message, "error_type": etype}


def error_message(raw: bytes, status: int) -> str:
    """The message of an error body in either shape (OpenAI or TGI/TEI), for relaying it."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return f"the engine answered {status}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return f"the engine answered {status}"


def tgi_status(err: APIError) -> int:
    """TGI reports validation problems as 422 where OpenAI uses 400."""
    return 422 if err.status == 400 else err.status


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code, error_type="validation")


def not_found(message: str, param: str | None = None) -> APIError:
    return APIError(404, message, param=param, code="model_not_found")
