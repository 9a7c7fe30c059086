"""Check a request's `parameters` against what a task honours: anything else is a 400, never
silently ignored (a client that sent `top_k` must get top_k results or be told why not)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelport.pipelines.errors import TaskInputError

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Rule:
    check: Check
    default: Any = None


def check_parameters(task: str, given: Any, rules: Mapping[str, Rule]) -> dict[str, Any]:
    """The parameters with defaults filled in; None values count as absent (clients send them)."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise TaskInputError("`parameters` must be a JSON object", param="parameters")
    out = {name: rule.default for name, rule in rules.items()}
    for name, value in given.items():
        if name not in rules:
            known = ", ".join(sorted(rules)) or "none"
            raise TaskInputError(
                f"parameter {name!r} is not supported for {task} (supported: {known})",
                param=f"parameters.{name}",
                code="unsupported_parameter",
            )
        if value is not None:
            out[name] = rules[name].check(f"parameters.{name}", value)
    return out


def integer(low: int, high: int) -> Check:
    def check(param: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TaskInputError(f"`{param}` must be an integer from {low} to {high}", param=param)
        return value

    return check


def number(low: float, high: float) -> Check:
    def check(param: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TaskInputError(f"`{param}` must be a number from {low} to {high}", param=param)
        if not low <= value <= high:
            raise TaskInputError(f"`{param}` must be a number from {low} to {high}", param=param)
        return float(value)

    return check


def boolean(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TaskInputError(f"`{param}` must be true or false", param=param)
    return value


def one_of(*choices: str) -> Check:
    def check(param: str, value: Any) -> str:
        if value not in choices:
            raise TaskInputError(f"`{param}` must be one of {', '.join(choices)}", param=param)
        return str(value)

    return check


def text(max_chars: int) -> Check:
    def check(param: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_chars:
            raise TaskInputError(f"`{param}` must be a string of at most {max_chars} characters", param=param)
        return value

    return check


def text_list(max_items: int, max_chars: int = 1000) -> Check:
    """A list of short strings; a comma-separated string is accepted as the Inference API does."""

    def check(param: str, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if (
            not isinstance(value, list)
            or not value
            or len(value) > max_items
            or not all(isinstance(v, str) and 0 < len(v) <= max_chars for v in value)
        ):
            raise TaskInputError(
                f"`{param}` must be a list of 1 to {max_items} non-empty strings", param=param
            )
        return list(value)

    return check


def anything(param: str, value: Any) -> Any:
    return value
