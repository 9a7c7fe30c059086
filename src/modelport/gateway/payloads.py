"""What a request body may be and how large, per content type; read as it arrives.

Task routes (the HF task route `/` and `/predict`, OpenAI audio and image generation, rerank)
take media besides JSON: an image, audio, raw bytes or an OpenAI multipart upload. Each kind has
its own size limit (envs.py: 20 MiB images, 25 MiB audio, multipart and octet-stream; JSON and
text keep the control plane's body limit), and a content type the route does not take is 415.
Other routes take what they always took, up to the text limit.

The body is read chunk by chunk and refused with 413 as soon as it passes its limit (or at once
when its Content-Length says it will), so an oversized upload is never buffered whole. A body
without a Content-Type (huggingface_hub sends bytes of an unknown type without one) is told by
its first bytes: a known image or audio signature is media, anything else text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import Request

from modelport import envs
from modelport.protocol.errors import APIError

MIB = 1024 * 1024
DEFAULT_TEXT_LIMIT = 8 * MIB  # as ControlConfig.max_body_bytes


class Kind(StrEnum):
    TEXT = "text"  # JSON, text/plain (and, on other routes, whatever they are sent)
    IMAGE = "image"
    AUDIO = "audio"
    MULTIPART = "multipart"  # multipart/form-data: OpenAI's audio uploads
    BINARY = "binary"  # application/octet-stream

    @property
    def media(self) -> bool:
        """Not text: the body carries no tokens the gateway could estimate."""
        return self is not Kind.TEXT


_ANY = frozenset(Kind)
_AUDIO_IN = frozenset({Kind.TEXT, Kind.AUDIO, Kind.MULTIPART, Kind.BINARY})
_JSON_ONLY = frozenset({Kind.TEXT})
TASK_ROUTES: dict[str, frozenset[Kind]] = {
    "/": _ANY,
    "/predict": _ANY,
    "/v1/audio/transcriptions": _AUDIO_IN,
    "/v1/audio/translations": _AUDIO_IN,
    "/v1/images/generations": _JSON_ONLY,
    "/rerank": _JSON_ONLY,
    "/v1/rerank": _JSON_ONLY,
}

# first bytes of the formats clients send without a Content-Type: (offset, signature, kind)
_SIGNATURES: tuple[tuple[int, bytes, Kind], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", Kind.IMAGE),
    (0, b"\xff\xd8\xff", Kind.IMAGE),  # JPEG
    (0, b"GIF87a", Kind.IMAGE),
    (0, b"GIF89a", Kind.IMAGE),
    (8, b"WEBP", Kind.IMAGE),  # RIFF....WEBP
    (0, b"II*\x00", Kind.IMAGE),  # TIFF, little-endian
    (0, b"MM\x00*", Kind.IMAGE),  # TIFF, big-endian
    (8, b"WAVE", Kind.AUDIO),  # RIFF....WAVE
    (0, b"fLaC", Kind.AUDIO),
    (0, b"OggS", Kind.AUDIO),
    (0, b"ID3", Kind.AUDIO),  # MP3 with a tag
    (0, b"\xff\xfb", Kind.AUDIO),  # MP3 frames
    (0, b"\xff\xf3", Kind.AUDIO),
    (0, b"\xff\xf2", Kind.AUDIO),
    (4, b"ftypM4A", Kind.AUDIO),
)
SNIFF_BYTES = 16


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The largest body of each kind, in bytes."""

    text: int = DEFAULT_TEXT_LIMIT
    image: int = 20 * MIB
    audio: int = 25 * MIB
    multipart: int = 25 * MIB
    binary: int = 25 * MIB

    @classmethod
    def from_env(cls, text: int = DEFAULT_TEXT_LIMIT) -> BodyLimits:
        """`text`: the control plane's body limit (JSON and text keep it)."""
        return cls(
            text=text,
            image=envs.byte_count(envs.MAX_IMAGE_BODY),
            audio=envs.byte_count(envs.MAX_AUDIO_BODY),
            multipart=envs.byte_count(envs.MAX_MULTIPART_BODY),
            binary=envs.byte_count(envs.MAX_BINARY_BODY),
        )

    def of(self, kind: Kind) -> int:
        return int(getattr(self, kind.value))

    @property
    def largest(self) -> int:
        return max(self.text, self.image, self.audio, self.multipart, self.binary)


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    kind: Kind
    content_type: str  # the media type as sent ("" when none), parameters left out


def media_type(content_type: str | None) -> str:
    """`image/png` of `Image/PNG; q=1`; "" for none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def kind_of(media: str) -> Kind | None:
    """The kind of a (non-empty) media type, or None for one no task route takes."""
    if media == "application/json" or media.endswith("+json") or media == "text/plain":
        return Kind.TEXT
    if media.startswith("image/"):
        return Kind.IMAGE
    if media.startswith("audio/"):
        return Kind.AUDIO
    if media == "multipart/form-data":
        return Kind.MULTIPART
    if media == "application/octet-stream":
        return Kind.BINARY
    return None


def sniff(head: bytes) -> Kind:
    """The kind of a body sent without a Content-Type, from its first bytes."""
    for offset, signature, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return kind
    return Kind.TEXT


def expected_kind(path: str, content_type: str | None) -> Kind | None:
    """The body's kind as its headers say (None: told by its first bytes), or 415 for a content
    type the task route does not take. Routes other than task routes are text, as before."""
    accepted = TASK_ROUTES.get(path)
    if accepted is None:
        return Kind.TEXT
    media = media_type(content_type)
    if not media:
        return None
    kind = kind_of(media)
    if kind is None or kind not in accepted:
        takes = ", ".join(sorted(k.value for k in accepted))
        raise APIError(
            415,
            f"{path} does not take {media} bodies (it takes: {takes})",
            param="content-type",
            code="unsupported_media_type",
            error_type="validation",
        )
    return kind


def too_large(kind: Kind, limit: int) -> APIError:
    return APIError(
        413,
        f"the request body is larger than {limit} bytes, the limit for {kind.value} bodies",
        code="request_too_large",
        error_type="validation",
    )


async def read_body(request: Request, path: str, limits: BodyLimits) -> Body:
    """The request's body, refused (415, 413) as soon as it is known not to fit."""
    content_type = request.headers.get("content-type")
    kind = expected_kind(path, content_type)
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        limit = limits.of(kind) if kind is not None else limits.largest
        if int(declared) > limit:
            raise too_large(kind or Kind.BINARY, limit)
    chunks: list[bytes] = []
    size = 0
    limit = limits.of(kind) if kind is not None else limits.largest
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if kind is None and size >= SNIFF_BYTES:
            kind = sniff(b"".join(chunks)[:SNIFF_BYTES])
            limit = limits.of(kind)
        if size > limit:
            raise too_large(kind or Kind.BINARY, limit)
    data = b"".join(chunks)
    if kind is None:
        kind = sniff(data)
        if size > limits.of(kind):
            raise too_large(kind, limits.of(kind))
    return Body(data, kind, media_type(content_type))
