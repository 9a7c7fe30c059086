"""A task request's wire body → `TaskRequest`, whatever the client sent.

- `application/json` (or no type and a JSON body): `{"inputs": ..., "parameters": {...}}`, the
  Inference API's shape; `options` (wait_for_model, use_cache) is accepted and has no effect here
  (a replica is loaded when it answers; nothing is cached). For an image or audio task, `inputs`
  is base64 (or a data: URL).
- `image/*`, `audio/*`, `application/octet-stream`: the body is the file; no parameters.
- `text/plain`: the body is the text input.
Anything else is a 415 that lists what the task takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelport.pipelines.base import InputKind, TaskRequest
from modelport.pipelines.errors import TaskInputError
from modelport.protocol.json_body import InvalidJSONBody, parse_json_body

MEDIA_KINDS: frozenset[InputKind] = frozenset({"image", "audio"})
_TOP_LEVEL = frozenset({"inputs", "parameters", "options"})


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(
    content_type: str | None, body: bytes, accepts: frozenset[InputKind], accept: str = "application/json"
) -> TaskRequest:
    kind = media_type(content_type)
    media = bool(accepts & MEDIA_KINDS)
    if kind.startswith(("image/", "audio/")) or kind == "application/octet-stream":
        wanted = kind.split("/", 1)[0]
        if not media or (wanted in ("image", "audio") and wanted not in accepts):
            takes = " or ".join(sorted(accepts))
            raise TaskInputError(
                f"this endpoint's task takes {takes} input, not {kind}", param=None, status=415,
                code="unsupported_media_type",
            )  # fmt: skip
        return TaskRequest(inputs=body, parameters={}, accept=accept)
    if kind == "text/plain":
        if media:
            raise TaskInputError(
                "this endpoint's task takes an image or audio file, not text/plain", param=None, status=415
            )
        try:
            return TaskRequest(inputs=body.decode("utf-8"), parameters={}, accept=accept)
        except UnicodeDecodeError:
            raise TaskInputError("the text/plain body is not UTF-8", param=None) from None
    if kind not in ("", "application/json") and not kind.endswith("+json"):
        raise TaskInputError(
            f"Content-Type {kind} is not accepted here: send application/json"
            + (", an image/* or audio/* file" if media else " or text/plain"),
            param=None,
            status=415,
            code="unsupported_media_type",
        )
    try:
        data = parse_json_body(body)
    except InvalidJSONBody as exc:
        if kind == "" and media and body:  # a raw upload sent without a type
            return TaskRequest(inputs=body, parameters={}, accept=accept)
        raise TaskInputError(str(exc), param=None) from None
    return from_json(data, accept)


def from_json(data: Any, accept: str = "application/json") -> TaskRequest:
    if not isinstance(data, Mapping) or "inputs" not in data:
        raise TaskInputError('the body must be a JSON object with "inputs" (and optional "parameters")')
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise TaskInputError(
            f"unknown field {unknown[0]!r}: the body takes inputs, parameters and options", param=unknown[0]
        )
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise TaskInputError("`parameters` must be a JSON object", param="parameters")
    return TaskRequest(inputs=data["inputs"], parameters=dict(parameters), accept=accept)
