"""Task routes: the Inference API's `POST /` for every pipeline task, and the OpenAI-shaped
`/v1/audio/transcriptions` and `/v1/images/generations` on the same runners.

Each answer carries its metering in headers the gateway reads: `x-prompt-tokens` (text inputs)
and `x-modelport-units` (`audio_seconds=…,images=…`). Runner errors become `APIError`s in the
route's API shape: bad input 400 (413 too large, 415 wrong media type), a failed forward 500,
a stopped worker 503.
"""

from __future__ import annotations

import asyncio
import math
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from modelport.pipelines.base import TaskOutput, TaskRequest
from modelport.pipelines.errors import TaskBackendError, TaskInputError, TaskUnavailable
from modelport.pipelines.payload import decode_body, media_type
from modelport.pipelines.runners.audio import transcription, transcription_request
from modelport.protocol.errors import APIError, Dialect, render
from modelport.protocol.json_body import InvalidJSONBody, parse_json_body
from modelport.server.openai_routes import get_state
from modelport.server.state import ServerState

router = APIRouter()

ASR = "automatic-speech-recognition"
TEXT_TO_IMAGE = "text-to-image"
_TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json")


async def task_root(request: Request, state: ServerState) -> Response:
    """`POST /` of a task endpoint (tgi_routes.root hands it over). Errors keep their own status
    (400, 413, 415) as the Inference API answers them, not TGI's 422 for every bad request."""
    service = state.require_tasks()
    body = await request.body()
    accept = request.headers.get("accept", "application/json")
    try:
        try:
            req = decode_body(request.headers.get("content-type"), body, service.runner.accepts, accept)
        except TaskInputError as exc:
            raise _api_error(exc) from None
        out = await run_task(state, req)
    except APIError as err:
        return JSONResponse(render(err, Dialect.TGI), status_code=err.status)
    return answer(out)


async def run_task(state: ServerState, req: TaskRequest) -> TaskOutput:
    service = state.require_tasks()
    try:
        return await service.run(req)
    except TaskInputError as exc:
        raise _api_error(exc) from None
    except TaskUnavailable as exc:
        raise APIError(503, str(exc), error_type="overloaded") from None
    except TaskBackendError as exc:
        raise APIError(500, str(exc), error_type="backend") from None


def answer(out: TaskOutput) -> Response:
    headers = metering_headers(out)
    if isinstance(out.body, bytes | bytearray):
        return Response(bytes(out.body), media_type=out.media_type, headers=headers)
    return JSONResponse(out.body, headers=headers)


def metering_headers(*outs: TaskOutput) -> dict[str, str]:
    tokens = sum(o.input_tokens for o in outs)
    units: dict[str, float] = {}
    for out in outs:
        for name, value in out.units.items():
            units[name] = units.get(name, 0.0) + float(value)
    headers = {"x-prompt-tokens": str(tokens)} if tokens else {}
    if units:
        headers["x-modelport-units"] = ",".join(f"{k}={_num(v)}" for k, v in sorted(units.items()))
    return headers


@router.post("/v1/audio/transcriptions", response_model=None)
async def transcriptions(request: Request, state: ServerState = Depends(get_state)) -> Response:
    """OpenAI's transcription route: a multipart form with `file` (and `model`, `response_format`,
    `language`, `prompt`, `temperature`), answered as {"text"}, plain text, or verbose_json."""
    service = state.require_tasks(ASR)
    if not media_type(request.headers.get("content-type")).startswith("multipart/form-data"):
        raise APIError(
            400, "send the audio as a multipart/form-data upload with a `file` field", param="file"
        )
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as exc:  # python-multipart's errors: a malformed or oversized form
        raise APIError(400, f"the multipart form cannot be read: {exc}", param="file") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise APIError(400, "the form has no `file` upload: send the audio as `file`", param="file")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        response_format = fields.pop("response_format", "json")
        if response_format not in _TRANSCRIPTION_FORMATS:
            raise APIError(
                400,
                f"`response_format` {response_format!r} is not supported; "
                f"use {', '.join(_TRANSCRIPTION_FORMATS)}",
                param="response_format",
            )
        fields.pop("model", None)  # the endpoint's URL names the model
        data = await upload.read()
    finally:
        await form.close()
    temperature, timestamps = _transcription_options(fields)
    try:
        req = transcription_request(service.runner, data, temperature=temperature, timestamps=timestamps)
    except TaskInputError as exc:
        raise _api_error(exc) from None
    out = await run_task(state, req)
    said = transcription(out)
    headers = metering_headers(out)
    if response_format == "text":
        return PlainTextResponse(said.text, headers=headers)
    if response_format == "verbose_json":
        segments = [
            {"id": i, "start": seg.start, "end": seg.end, "text": seg.text}
            for i, seg in enumerate(said.segments)
        ] or [{"id": 0, "start": 0.0, "end": said.duration, "text": said.text}]
        verbose = {
            "task": "transcribe",
            "language": "unknown",  # the recognizers here do not detect the language
            "duration": said.duration,
            "text": said.text,
            "segments": segments,
        }
        return JSONResponse(verbose, headers=headers)
    usage = {"type": "duration", "seconds": math.ceil(said.duration)}
    return JSONResponse({"text": said.text, "usage": usage}, headers=headers)


def _transcription_options(fields: dict[str, str]) -> tuple[float | None, bool]:
    """OpenAI's form fields the runner can honour (temperature, timestamp granularities); the
    rest (language, prompt, ...) are refused, not ignored."""
    temperature: float | None = None
    timestamps = False
    for name, value in fields.items():
        if name == "temperature":
            try:
                temperature = float(value)
            except ValueError:
                raise APIError(400, "`temperature` must be a number", param="temperature") from None
        elif name == "timestamp_granularities[]" and value in ("segment", "word"):
            timestamps = True
        else:
            raise APIError(
                400,
                f"the form field {name!r} is not supported by this endpoint's speech recognizer",
                param=name,
            )
    return temperature, timestamps


@router.post("/v1/images/generations", response_model=None)
async def images_generations(request: Request, state: ServerState = Depends(get_state)) -> JSONResponse:
    """OpenAI's image generation: {prompt, n, size "WxH", response_format b64_json, seed, ...}
    (runners/diffusion.py reads the body); the n images run as n requests, each its own seed."""
    state.require_tasks(TEXT_TO_IMAGE)
    from modelport.pipelines.runners.diffusion import openai_image_requests, openai_images_response

    try:
        requests = openai_image_requests(parse_json_body(await request.body()))
    except InvalidJSONBody as exc:
        raise APIError(400, str(exc)) from None
    except TaskInputError as exc:
        raise _api_error(exc) from None
    outs = await asyncio.gather(*(run_task(state, r) for r in requests))
    pngs = [bytes(o.body) for o in outs if isinstance(o.body, bytes | bytearray)]
    if len(pngs) != len(requests):
        raise APIError(500, "the model did not answer with images", error_type="backend")
    return JSONResponse(openai_images_response(pngs, int(time.time())), headers=metering_headers(*outs))


def _api_error(exc: TaskInputError) -> APIError:
    return APIError(exc.status, str(exc), param=exc.param, code=exc.code, error_type="validation")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
