"""Request bodies per content type (gateway/payloads.py): each kind's limit, refused (413) as soon
as it is passed and before the rest is read, a content type a task route does not take (415,
in the route's error shape), bodies without a Content-Type told by their first bytes, and the
limits read from the environment."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from modelport.gateway.errors import error_answer
from modelport.gateway.payloads import BodyLimits, Kind, expected_kind, read_body, sniff
from modelport.protocol.errors import APIError

from .neighbours import request

LIMITS = BodyLimits(text=100, image=200, audio=300, multipart=400, binary=500)
PNG = b"\x89PNG\r\n\x1a\n"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


class Upload:
    """An ASGI receive that hands over the body in chunks, counting the chunks read."""

    def __init__(self, body: bytes, chunk: int = 64) -> None:
        self.parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.read = 0

    async def __call__(self) -> dict[str, Any]:
        part = self.parts[self.read]
        self.read += 1
        return {"type": "http.request", "body": part, "more_body": self.read < len(self.parts)}


def read(path: str, body: bytes, content_type: str | None, chunk: int = 64, declared: bool = False) -> Any:
    headers = {"content-type": content_type} if content_type is not None else {}
    if declared:
        headers["content-length"] = str(len(body))
    upload = Upload(body, chunk)
    req = request(headers, path=f"/endpoints/default/m{path}", receive=upload)
    try:
        return asyncio.run(read_body(req, path, LIMITS)), upload
    except APIError as err:
        return err, upload


@pytest.mark.parametrize(
    ("content_type", "kind", "limit"),
    [
        ("application/json", Kind.TEXT, 100),
        ("text/plain; charset=utf-8", Kind.TEXT, 100),
        ("Image/PNG", Kind.IMAGE, 200),
        ("audio/flac", Kind.AUDIO, 300),
        ("multipart/form-data; boundary=x", Kind.MULTIPART, 400),
        ("application/octet-stream", Kind.BINARY, 500),
    ],
)
def test_each_kind_has_its_own_limit_on_the_task_route(content_type: str, kind: Kind, limit: int) -> None:
    body, _ = read("/", PNG + b"x" * (limit - len(PNG)), content_type)
    assert (body.kind, len(body.data), body.content_type) == (kind, limit, content_type.split(";")[0].lower())
    err, upload = read("/", b"x" * (limit * 10), content_type, chunk=limit // 4)
    assert isinstance(err, APIError) and err.status == 413 and str(limit) in err.message
    assert upload.read <= 5 < len(upload.parts)  # refused once past the limit, the rest never read


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read() -> None:
    err, upload = read("/", PNG * 100, "image/png", declared=True)
    assert isinstance(err, APIError) and err.status == 413 and upload.read == 0


def test_a_body_of_exactly_the_limit_passes_and_one_byte_more_does_not() -> None:
    assert len(read("/", b"x" * 200, "image/png", chunk=7)[0].data) == 200
    assert read("/", b"x" * 201, "image/png", chunk=7)[0].status == 413


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "video/mp4"),
        ("/", "application/xml"),
        ("/predict", "text/html"),
        ("/v1/audio/transcriptions", "image/png"),
        ("/v1/images/generations", "multipart/form-data; boundary=b"),
        ("/rerank", "application/octet-stream"),
        ("/v1/rerank", "audio/wav"),
    ],
)
def test_a_content_type_the_task_route_does_not_take_is_415(path: str, content_type: str) -> None:
    with pytest.raises(APIError) as info:
        expected_kind(path, content_type)
    assert info.value.status == 415 and info.value.param == "content-type"
    answer = error_answer(info.value, path)
    body = json.loads(bytes(answer.body))
    media = content_type.split(";")[0]
    assert answer.status_code == 415
    if path.startswith("/v1/"):  # OpenAI's error shape
        assert body["error"]["code"] == "unsupported_media_type" and media in body["error"]["message"]
    else:  # TGI / TEI / HF task shape
        assert body["error_type"] == "validation" and media in body["error"]


def test_audio_routes_take_uploads_and_other_routes_keep_taking_anything_as_text() -> None:
    assert expected_kind("/v1/audio/transcriptions", "multipart/form-data; boundary=x") is Kind.MULTIPART
    assert expected_kind("/v1/audio/translations", "audio/mpeg") is Kind.AUDIO
    assert expected_kind("/v1/chat/completions", "video/mp4") is Kind.TEXT  # the engine says no
    assert expected_kind("/generate", None) is Kind.TEXT
    assert expected_kind("/", None) is None  # told by its first bytes
    body, _ = read("/v1/chat/completions", b"x" * 150, "image/png")
    assert isinstance(body, APIError) and body.status == 413  # the text limit applies off task routes


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PNG, Kind.IMAGE),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", Kind.IMAGE),
        (b"GIF89a", Kind.IMAGE),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", Kind.IMAGE),
        (WAV, Kind.AUDIO),
        (b"fLaC\x00\x00\x00\x22", Kind.AUDIO),
        (b"OggS\x00\x02", Kind.AUDIO),
        (b"ID3\x04\x00", Kind.AUDIO),
        (b'{"inputs": "hi"}', Kind.TEXT),
        (b"", Kind.TEXT),
    ],
)
def test_a_body_without_a_content_type_is_told_by_its_first_bytes(head: bytes, kind: Kind) -> None:
    assert sniff(head) is kind


def test_an_unlabelled_body_gets_the_limit_of_what_it_turns_out_to_be() -> None:
    body, _ = read("/", WAV + b"\x00" * 250, None, chunk=3)  # sniffed over several small chunks
    assert (body.kind, body.content_type) == (Kind.AUDIO, "")
    assert read("/", WAV + b"\x00" * 300, None)[0].status == 413  # audio: 300
    assert read("/", b'{"inputs": "' + b"a" * 120 + b'"}', None)[0].status == 413  # text: 100
    short, _ = read("/", PNG, None)  # shorter than the sniffed prefix: told once complete
    assert short.kind is Kind.IMAGE


def test_limits_come_from_the_environment_a_typo_keeps_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_MAX_IMAGE_BODY", "1024")
    monkeypatch.setenv("MODELPORT_MAX_AUDIO_BODY", "lots")
    monkeypatch.setenv("MODELPORT_MAX_BINARY_BODY", "-5")
    limits = BodyLimits.from_env(text=4096)
    assert (limits.text, limits.image) == (4096, 1024)
    assert limits.audio == limits.multipart == limits.binary == 25 * 1024 * 1024
    assert BodyLimits().image == 20 * 1024 * 1024
