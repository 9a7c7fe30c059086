"""The peer of `modelport serve` in benchmarks/tasks.py: what a managed default container does.

    python benchmarks/pipeline_server.py MODEL_DIR --task text-classification --port 8123 [--threads 1]

One `transformers.pipeline(task, model=MODEL_DIR)` object, built at start; every request calls it
once, on its own, in the server's thread pool (FastAPI's `run_in_threadpool`), so concurrent
requests each run their own forward and nothing is batched. Same port protocol as modelport's
task endpoints: `POST /` with {"inputs": ..., "parameters": {...}} or a raw image / audio body
(decoded with Pillow / soundfile, as the pipeline cannot take bytes without ffmpeg); `GET /health`.
"""

from __future__ import annotations

import argparse
import io
import os
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response


def _decode(content_type: str, body: bytes) -> tuple[Any, dict[str, Any]]:
    """(inputs, parameters) of one request body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith("image/"):
        from PIL import Image

        return Image.open(io.BytesIO(body)).convert("RGB"), {}
    if kind.startswith("audio/"):
        import soundfile

        wave, rate = soundfile.read(io.BytesIO(body), dtype="float32", always_2d=True)
        return {"raw": wave.mean(axis=1), "sampling_rate": rate}, {}
    import json

    data = json.loads(body)
    return data["inputs"], dict(data.get("parameters") or {})


def _plain(value: Any) -> Any:
    """Pipeline answers as JSON (numpy scalars and arrays included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def build_app(model: str, task: str) -> FastAPI:
    from transformers import pipeline

    build: Any = pipeline  # the task is a runtime string, not one of its overloads' literals
    pipe = build(task, model=model, device="cpu")
    app = FastAPI()

    def predict(content_type: str, body: bytes) -> Any:
        inputs, parameters = _decode(content_type, body)
        return _plain(pipe(inputs, **parameters))

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.post("/")
    async def root(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "application/json")
        try:
            answer = await run_in_threadpool(predict, content_type, body)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=400)
        return JSONResponse(answer)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--task", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0))
    args = parser.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    app = build_app(args.model, args.task)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
