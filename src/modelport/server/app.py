"""The engine server's ASGI app: middleware, error rendering, health and metrics.

Middleware order (outermost first): body-size limit → request id → routes. Errors are
rendered in the dialect of the route that was called, so the OpenAI SDK, the TGI client and
TEI clients each see the error shape they parse.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelport import __version__
from modelport.engine import startup
from modelport.protocol.errors import APIError
from modelport.protocol.http import BodyLimitMiddleware, error_response
from modelport.server import embed_routes, openai_routes, tgi_routes
from modelport.server.state import ServerState

log = logging.getLogger("modelport.server")


def create_app(state: ServerState, api: str = "all") -> FastAPI:
    """api "openai" serves only /v1/* (plus /health and /metrics), as vLLM or llama.cpp do."""
    app = FastAPI(title="modelport engine server", version=__version__)
    app.state.mp = state

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[Any] = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            message, param = "the request body is not valid JSON", None
        else:
            message = f"invalid request: {param or 'body'}: {first.get('msg')}"
        return error_response(request.url.path, APIError(400, message, param=param, error_type="validation"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request.url.path, APIError(500, f"internal error ({type(exc).__name__})"))

    @app.middleware("http")
    async def request_id(request: Request, call_next: Any) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        start = time.monotonic()
        response: Response = await call_next(request)
        response.headers["x-request-id"] = rid
        log.debug(
            "%s %s %d %.1fms",
            request.method,
            request.url.path,
            response.status_code,
            (time.monotonic() - start) * 1000,
        )
        return response

    @app.get("/health")
    async def health() -> Response:
        if not state.healthy():
            return JSONResponse({"error": "unhealthy", "error_type": "healthcheck"}, status_code=503)
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = generate_latest(startup.registry)
        if state.llm is not None:
            body += generate_latest(state.llm.metrics.registry)
        if state.embedder is not None:
            body += generate_latest(state.embedder.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    for router in (openai_routes.router, embed_routes.router, tgi_routes.router):
        if api == "openai":
            router = APIRouter(routes=[r for r in router.routes if getattr(r, "path", "").startswith("/v1/")])
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=state.max_body_bytes)
    return app
