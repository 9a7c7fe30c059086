"""A tiny OpenAI-compatible server for testing the load generator (not an engine).

It streams ``max_tokens`` chunks of " tok" with fixed delays, ends with a usage chunk and
``[DONE]``, and records the peak number of requests in flight. Model ids change behaviour:
``no-usage`` omits the usage chunk, ``merged`` omits it too and sends two tokens per chunk then a
last chunk with finish_reason "length" (as llama-cpp-python does with bytes that do not end a UTF-8
character), ``broken`` answers 500, ``stream-error`` sends an in-stream error.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from modelport.bench.process import free_port


@dataclass
class FakeState:
    first_token_delay_s: float = 0.05
    token_delay_s: float = 0.01
    api_key: str | None = None
    in_flight: int = 0
    peak_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)


def create_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    def unauthorized(request: Request) -> bool:
        return state.api_key is not None and request.headers.get("authorization") != f"Bearer {state.api_key}"

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if unauthorized(request):
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def handle(request: Request, chat: bool) -> Response:
        if unauthorized(request):
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        state.bodies.append(body)
        model, n = body["model"], int(body.get("max_tokens", 16))
        if model == "broken":
            return JSONResponse({"error": {"message": "engine is broken"}}, status_code=500)

        def chunk(text: str) -> dict[str, Any]:
            choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
            return {"object": "chunk", "model": model, "choices": [choice]}

        usage = {"prompt_tokens": len(str(body.get("prompt", body.get("messages")))), "completion_tokens": n}

        async def events() -> AsyncIterator[bytes]:
            state.in_flight += 1
            state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
            try:
                if chat:  # a role-only first chunk, as vLLM and OpenAI send: not a token
                    yield f"data: {json.dumps(chunk(''))}\n\n".encode()
                yield b": keep-alive comment\n\n"
                await asyncio.sleep(state.first_token_delay_s)
                for i in range(n):
                    if i:
                        await asyncio.sleep(state.token_delay_s)
                    if model == "stream-error" and i == 2:
                        yield f"data: {json.dumps({'error': {'message': 'died mid-stream'}})}\n\n".encode()
                        return
                    if model == "merged" and i % 2 == 0:
                        continue
                    piece = " tok" if model != "merged" else " tok tok"
                    yield f"data: {json.dumps(chunk(piece))}\n\n".encode()
                if model == "merged":
                    last = {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}
                    yield f"data: {json.dumps(last)}\n\n".encode()
                if model not in ("no-usage", "merged") and body.get("stream_options", {}).get(
                    "include_usage"
                ):
                    yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
                yield b"data: [DONE]\n\n"
            finally:
                state.in_flight -= 1

        if body.get("stream"):
            return StreamingResponse(events(), media_type="text/event-stream")
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        await asyncio.sleep(state.first_token_delay_s + state.token_delay_s * (n - 1))
        state.in_flight -= 1
        text = " tok" * n
        choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"text": text}
        out: dict[str, Any] = {"model": model, "choices": [choice]}
        if model != "no-usage":
            out["usage"] = usage
        return JSONResponse(out)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(request, chat=True)

    return app


@contextmanager
def serve_fake(state: FakeState) -> Iterator[str]:
    """Run the fake server in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("fake server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
