"""Request bodies are strict JSON nested at most 64 levels; deeper is a clean error, not a RecursionError."""

from __future__ import annotations

import json

import pytest

from modelport.protocol.json_body import (
    MAX_DEPTH,
    InvalidJSONBody,
    JSONTooDeep,
    nesting_exceeds,
    parse_json_body,
)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_up_to_the_limit_parses_and_one_more_is_refused() -> None:
    assert parse_json_body(nested(MAX_DEPTH)) is not None
    with pytest.raises(JSONTooDeep, match="deeper than 64"):
        parse_json_body(nested(MAX_DEPTH + 1))
    with pytest.raises(JSONTooDeep):  # where CPython's json raises RecursionError
        parse_json_body(b'{"a": ' + nested(100_000) + b"}")


def test_brackets_inside_strings_do_not_count() -> None:
    body = {"prompt": '[[[{{"\\]]' * 100, "deep": [[["x"]]]}
    assert parse_json_body(json.dumps(body).encode()) == body


@pytest.mark.parametrize("raw", [b'{"t": NaN}', b'{"t": Infinity}', b"[-Infinity]", b"{oops", b"[}", b"\xff"])
def test_what_is_not_strict_json_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidJSONBody) as info:
        parse_json_body(raw)
    assert not isinstance(info.value, JSONTooDeep)
    assert "not valid JSON" in str(info.value)


@pytest.mark.timeout(20)
def test_an_unterminated_string_of_escaped_quotes_is_measured_in_linear_time() -> None:
    """A body of one quote and 400,000 escaped quotes: the depth check once rescanned the rest
    of the body from every escaped quote (hours for a body under the size limit)."""
    raw = b'"' + b'\\"' * 400_000
    assert not nesting_exceeds(raw)
    with pytest.raises(InvalidJSONBody):
        parse_json_body(raw)
    wide = (b"[" * 63 + b"]" * 63 + b",") * 20_000  # many brackets, each group within the limit
    assert not nesting_exceeds(wide[:-1])
    assert nesting_exceeds(b"[[" + wide[:-1] + b"]]")  # 65 levels
