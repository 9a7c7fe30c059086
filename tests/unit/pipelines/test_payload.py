"""Task request bodies: JSON, raw media and text, and the refusals in between."""

from __future__ import annotations

import pytest

from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.payload import decode_body

TEXT = frozenset({"text"})
IMAGE = frozenset({"image"})


def test_json_inputs_and_parameters() -> None:
    req = decode_body("application/json", b'{"inputs": "hi", "parameters": {"top_k": 2}}', TEXT)
    assert req.inputs == "hi" and req.parameters == {"top_k": 2}
    req = decode_body(None, b'{"inputs": ["a", "b"], "options": {"wait_for_model": true}}', TEXT)
    assert req.inputs == ["a", "b"] and req.parameters == {}


def test_raw_image_bytes_and_text_plain() -> None:
    png = b"\x89PNG\r\n\x1a\n..."
    assert decode_body("image/png", png, IMAGE).inputs == png
    assert decode_body("application/octet-stream", png, IMAGE).inputs == png
    assert decode_body(None, png, IMAGE).inputs == png  # untyped upload that is not JSON
    assert decode_body("text/plain; charset=utf-8", "héllo".encode(), TEXT).inputs == "héllo"


@pytest.mark.parametrize(
    ("content_type", "body", "accepts", "status", "match"),
    [
        ("image/png", b"x", TEXT, 415, "takes text input, not image/png"),
        ("audio/wav", b"x", IMAGE, 415, "takes image input, not audio/wav"),
        ("text/plain", b"x", IMAGE, 415, "not text/plain"),
        ("video/mp4", b"x", IMAGE, 415, "video/mp4 is not accepted"),
        ("application/json", b"{", TEXT, 400, "JSON"),
        ("application/json", b'["a"]', TEXT, 400, 'with "inputs"'),
        ("application/json", b'{"inputs": "a", "top_k": 1}', TEXT, 400, "unknown field 'top_k'"),
        ("application/json", b'{"inputs": "a", "parameters": [1]}', TEXT, 400, "must be a JSON object"),
        ("text/plain", b"\xff\xfe", TEXT, 400, "not UTF-8"),
    ],
)
def test_refusals(content_type: str, body: bytes, accepts: frozenset[str], status: int, match: str) -> None:
    with pytest.raises(TaskInputError, match=match) as info:
        decode_body(content_type, body, accepts)  # type: ignore[arg-type]
    assert info.value.status == status
