"""HTTP framing shared by the engine server and the control plane: body limit, error responses.

No engine imports here, so the control plane can use it without loading torch.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.protocol.errors import APIError, Dialect, dialect_for_path, render, tgi_status


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before they are buffered in full."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(scope, send, self._too_large())
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> APIError:
        return APIError(
            413, f"the request body is larger than {self.max_bytes} bytes", error_type="validation"
        )


async def _send_error(scope: Scope, send: Send, err: APIError) -> None:
    response = error_response(scope.get("path", "/"), err)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def error_response(path: str, err: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    dialect = dialect_for_path(path)
    status = err.status if dialect is Dialect.OPENAI else tgi_status(err)
    return JSONResponse(render(err, dialect), status_code=status, headers=headers)
