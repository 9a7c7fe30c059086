"""An engine that misbehaves on request, for the gateway's hostile-replica tests.

A small FastAPI app (not modelport code) that answers /health and /v1/chat/completions by
echoing, and, by the last message's content:
- "crash": the process exits while the request is in flight (a request that kills its replica);
- "hang": never answers (a hung replica);
- "stall" (streamed): sends one event, then goes silent.
It also serves routes an engine has but a caller must never reach (vLLM's /sleep and
/collective_rpc, /metrics, /v1/load_lora_adapter). Every request it receives is appended to
the file --hits, one line "<pid> <method> <path> <x-probe header>", so a test sees what of its
own requests reached which replica (the control plane's own calls, such as /metrics, carry no
x-probe).
With --start-delay S it sleeps S seconds before it listens (a slow cold start).
Run: python tests/support/faulty_app.py --port P --hits FILE [--start-delay S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send


def build(hits: str) -> FastAPI:
    app = FastAPI()

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        # a plain ASGI wrapper: Starlette's http middleware would hide the client's disconnect
        if scope["type"] == "http" and scope["path"] != "/health":
            probe = dict(scope["headers"]).get(b"x-probe", b"-").decode()
            with open(hits, "a") as f:
                f.write(f"{os.getpid()} {scope['method']} {scope['path']} {probe}\n")
        await inner(scope, receive, send)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for path in ("/sleep", "/collective_rpc", "/v1/load_lora_adapter", "/metrics", "/admin"):
        app.add_api_route(path, lambda: {"reached": True}, methods=["GET", "POST"])

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        text = str(body["messages"][-1]["content"])
        if text == "crash":
            os._exit(3)
        if text == "hang":  # until the caller goes away, which is recorded
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)
            with open(hits, "a") as f:
                f.write(f"{os.getpid()} DISCONNECTED\n")
            return JSONResponse({})
        base = {"id": "chatcmpl-faulty", "created": int(time.time()), "model": "faulty"}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice]})

        async def events() -> AsyncIterator[str]:
            chunk = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": text}}],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
            if text == "stall":
                await asyncio.sleep(3600)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    inner = app.build_middleware_stack()
    app.build_middleware_stack = lambda: record  # type: ignore[method-assign]
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hits", required=True)
    parser.add_argument("--start-delay", type=float, default=0.0)
    args = parser.parse_args()
    time.sleep(args.start_delay)
    uvicorn.run(build(args.hits), host="127.0.0.1", port=args.port, log_level="warning")
