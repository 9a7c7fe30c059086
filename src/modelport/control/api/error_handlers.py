"""How the control API answers an error: always `{"error", "error_type", "field"?}` with the
status the managed API uses (huggingface_hub and modelport's SDK read `error`), whether a
service refused (ControlError), the shared protocol layer did (APIError), or a query parameter
failed FastAPI's own checks (which would otherwise answer `{"detail": [...]}`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from modelport.control.services.errors import ControlError
from modelport.protocol.errors import APIError


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return JSONResponse({"error": exc.message, "error_type": exc.error_type or "bad_request"}, exc.status)

    @app.exception_handler(ControlError)
    async def control_error(request: Request, exc: ControlError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        error = invalid_parameters(exc)
        return JSONResponse(error.body(), status_code=error.status)


def invalid_parameters(exc: RequestValidationError) -> ControlError:
    """FastAPI's refusal of a query or path parameter in the API's terms: each problem as
    `name: why`, the first one's name as the field."""
    problems, fields = [], []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"][1:])  # past "query" / "path"
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
        fields.append(where)
    return ControlError(
        422, "validation", "; ".join(problems) or "invalid request", fields[0] if fields else None
    )
