"""Errors a task request can end with; the server renders them in the route's API shape."""

from __future__ import annotations


class TaskInputError(ValueError):
    """The request cannot run as sent: 400 by default, 413 too large, 415 wrong media type."""

    def __init__(
        self, message: str, param: str | None = "inputs", status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code


class TaskUnavailable(RuntimeError):
    """The pipeline is not running: not started, shutting down, or its worker died (503)."""


class TaskBackendError(RuntimeError):
    """The model failed on this request (500); other requests of its batch are unaffected."""
