"""Errors the SDK raises.

ModelportError
├── ConnectError        the control plane cannot be reached
├── APIError            the API answered with an error (status_code, message, error_type, field)
│   ├── BadRequest      400
│   ├── Unauthorized    401
│   ├── Forbidden       403
│   ├── NotFound        404
│   ├── Conflict        409
│   ├── ValidationError 422
│   └── ServerError     5xx
├── EndpointFailed      wait(): the endpoint ended in failed / updateFailed
└── WaitTimeout         wait(): the endpoint was not ready in time
"""

from __future__ import annotations


class ModelportError(Exception):
    pass


class ConnectError(ModelportError):
    pass


class APIError(ModelportError):
    def __init__(
        self, status_code: int, message: str, error_type: str | None = None, field: str | None = None
    ):
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.field = field


class BadRequest(APIError):
    pass


class Unauthorized(APIError):
    pass


class Forbidden(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class ValidationError(APIError):
    pass


class ServerError(APIError):
    pass


class EndpointFailed(ModelportError):
    pass


class WaitTimeout(ModelportError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
}


def error_for(status_code: int, message: str, error_type: str | None, field: str | None) -> APIError:
    cls = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else APIError)
    return cls(status_code, message, error_type, field)
