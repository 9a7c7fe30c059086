"""A user's own OpenAI-compatible server, as someone would bring to a `custom` endpoint.

Deliberately not modelport code: a small FastAPI app that answers /health,
/v1/chat/completions (plain and streamed) and /v1/completions by echoing the input word by
word, and says which process answered (x-served-by), so a test can see requests spread over
replicas. With --sleep-routes it also has vLLM's sleep routes (POST /sleep, POST /wake_up,
GET /is_sleeping) and refuses generation while asleep, as a user's own vLLM would be run.
With --fault-route, POST /fault?health=503 (or =hang) makes /health answer 503 (or never answer)
from then on while the process stays up, as a server whose engine died or hung would.
Run: python tests/support/custom_app.py --port P [--name N] [--sleep-routes] [--fault-route]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def build(name: str, sleep_routes: bool = False, fault_route: bool = False) -> FastAPI:
    app = FastAPI()
    state = {"asleep": False, "sleeps": 0, "wakes": 0, "health": "ok"}

    if fault_route:

        @app.post("/fault")
        def fault(health: str) -> dict[str, str]:
            state["health"] = health
            return {"health": health}

    if sleep_routes:

        @app.post("/sleep")
        def sleep(level: int = 1) -> dict[str, int]:
            state["asleep"] = True
            state["sleeps"] += 1
            return {"level": level}

        @app.post("/wake_up")
        def wake_up() -> dict[str, bool]:
            state["asleep"] = False
            state["wakes"] += 1
            return {"ok": True}

        @app.get("/is_sleeping")
        def is_sleeping() -> dict[str, bool]:
            return {"is_sleeping": bool(state["asleep"])}

        @app.middleware("http")
        async def refuse_while_asleep(request: Request, call_next: Any) -> Any:
            if state["asleep"] and request.url.path.startswith("/v1/"):
                return JSONResponse({"error": {"message": "the engine is asleep"}}, status_code=503)
            response = await call_next(request)
            response.headers["x-sleeps"] = f"{state['sleeps']}/{state['wakes']}"
            return response

    @app.get("/health")
    async def health() -> Any:
        if state["health"] == "hang":
            await asyncio.sleep(3600)
        if state["health"] == "503":
            return JSONResponse({"status": "engine dead"}, status_code=503)
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        words = str(body["messages"][-1]["content"]).split()[: int(body.get("max_tokens") or 16)]
        usage = {"prompt_tokens": len(words), "completion_tokens": len(words), "total_tokens": 2 * len(words)}
        headers = {"x-served-by": str(os.getpid())}
        base = {"id": "chatcmpl-custom", "created": int(time.time()), "model": name}
        if not body.get("stream"):
            message = {"role": "assistant", "content": " ".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}, headers=headers
            )

        def events() -> Iterator[str]:
            for i, word in enumerate(words):
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
                chunk = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            last = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', 'choices': [last]})}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                tail = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                yield f"data: {json.dumps(tail)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.post("/v1/completions")
    async def complete(request: Request) -> Any:
        body = await request.json()
        words = str(body["prompt"]).split()[: int(body.get("max_tokens") or 16)]
        usage = {"prompt_tokens": len(words), "completion_tokens": len(words), "total_tokens": 2 * len(words)}
        choice = {"index": 0, "text": " ".join(words), "finish_reason": "stop", "logprobs": None}
        reply = {"id": "cmpl-custom", "object": "text_completion", "created": int(time.time()), "model": name}
        return JSONResponse(
            {**reply, "choices": [choice], "usage": usage}, headers={"x-served-by": str(os.getpid())}
        )

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="custom")
    parser.add_argument("--sleep-routes", action="store_true")
    parser.add_argument("--fault-route", action="store_true")
    args = parser.parse_args()
    app = build(args.name, args.sleep_routes, args.fault_route)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
