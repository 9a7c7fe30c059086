"""A service's refusal: an HTTP status, an error type and a message, raised by the services and
rendered by the API as `{"error", "error_type", "field"}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass
class ControlError(Exception):
    status: int
    error_type: str
    message: str
    field: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "error_type": self.error_type}
        if self.field:
            out["field"] = self.field
        return out


def validation_error(exc: ValidationError) -> ControlError:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {msg}" if where else msg)
    first = ".".join(str(p) for p in exc.errors()[0]["loc"]) if exc.errors() else None
    return ControlError(422, "validation", "; ".join(problems), first or None)
