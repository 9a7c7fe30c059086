"""Parse a request body as strict JSON with a nesting limit, before any model sees it.

CPython's json module recurses once per level and raises RecursionError near 1000 levels,
which surfaced as a 500; no API body needs more than a few levels. The depth is measured
before parsing, in linear time: escapes, then strings are cut out, every byte but brackets is
dropped, and the running bracket count's maximum is taken (numpy) only when there are more
brackets than the limit allows at all. NaN and Infinity literals (not JSON, but accepted
by Python) are refused too, so no float field can receive them from a body.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

# escapes first, then strings: each pattern is linear (a string pattern that also handles
# escapes rescans to the end from every escaped quote of an unterminated string: quadratic)
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class InvalidJSONBody(ValueError):
    """The body is not JSON an API accepts; the message is safe to send to the caller."""


class JSONTooDeep(InvalidJSONBody):
    pass


def nesting_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the brackets of a JSON text nest deeper than ``limit`` (unbalanced text: False,
    the parser reports it)."""
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(None, _NOT_BRACKETS)
    if len(brackets) <= 2 * limit:
        return False  # too few brackets to nest that deep
    import numpy as np

    steps = np.zeros(256, dtype=np.int32)
    steps[list(b"[{")], steps[list(b"]}")] = 1, -1
    depth = np.cumsum(steps[np.frombuffer(brackets, dtype=np.uint8)], dtype=np.int32)
    return int(depth.max()) > limit


def _no_constant(name: str) -> Any:
    raise InvalidJSONBody(f"the request body is not valid JSON: {name} is not a JSON value")


def parse_json_body(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed body; `JSONTooDeep` past ``max_depth`` levels, `InvalidJSONBody` for anything
    that is not strict JSON (bad syntax, bad UTF-8, NaN/Infinity)."""
    if nesting_exceeds(raw, max_depth):
        raise JSONTooDeep(f"the request body nests deeper than {max_depth} levels")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except InvalidJSONBody:
        raise
    except RecursionError as exc:  # unreachable past the depth check; kept as the last guard
        raise JSONTooDeep(f"the request body nests deeper than {max_depth} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSONBody("the request body is not valid JSON") from exc
