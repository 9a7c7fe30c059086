"""Request bodies for every route: strict JSON with a nesting limit, errors in the route's shape."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from modelport.protocol.errors import bad_request
from modelport.protocol.json_body import InvalidJSONBody, parse_json_body

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request) -> Any:
    """The parsed body, or a 400 (422 on TGI/TEI routes) saying why it is not acceptable JSON."""
    try:
        return parse_json_body(await request.body())
    except InvalidJSONBody as exc:
        raise bad_request(str(exc)) from exc


async def model_body(request: Request, model: type[M]) -> M:
    """The body validated as ``model``; errors render as the app's validation errors do."""
    body = await json_body(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
