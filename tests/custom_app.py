"""A user's own OpenAI-compatible server, as someone would bring to a `custom` endpoint.

Deliberately not modelport code: a small FastAPI app that answers /health,
/v1/chat/completions (plain and streamed) and /v1/completions by echoing the input word by
word, and says which process answered (x-served-by), so a test can see requests spread over
replicas. With --sleep-routes it also has vLLM's sleep routes (POST /sleep, POST /wake_up,
GET /is_sleeping) and refuses generation while asleep, as a user's own vLLM would be run.
Run: python tests/custom_app.py --port P [--name N] [--sleep-routes]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def build(name: str, sleep_routes: bool = False) -> FastAPI:
    app = FastAPI()
    state = {"asleep": False, "sleeps": 0, "wakes": 0}

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
    def health() -> dict[str, str]:
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
    args = parser.parse_args()
    uvicorn.run(build(args.name, args.sleep_routes), host="127.0.0.1", port=args.port, log_level="warning")
