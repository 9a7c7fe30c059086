"""Task payloads through a real gateway (uvicorn, on loopback) to a real stand-in replica that
answers with `x-modelport-units`, with the usage log writing to a real SQLite store: an image
and a multipart upload arrive upstream byte for byte with their Content-Type, an oversized image
is refused with 413 in the route's error shape without reaching the replica, `video/mp4` is 415,
and the usage records carry the units the replica reported."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as Path_
from starlette.types import Receive, Scope, Send

from modelport.auth.admin_token import token_hash
from modelport.auth.api_keys import KeyRing
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.proxy import Gateway, GatewaySettings
from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.gateway.upstream import Upstream
from modelport.observe.usage_log import UsageLog
from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.store.repository import Store
from tests.support.thread_server import serving

IMAGE_LIMIT = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(40_000)  # binary, not UTF-8: any re-encoding would show
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(20_000)
UNITS = {"/": "images=1,pixels=4096", "/v1/audio/transcriptions": "audio_seconds=3.25"}


class Replica:
    """A task server stand-in: keeps what each request brought, answers with units."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []

        async def task(request: Request) -> JSONResponse:
            body = await request.body()
            self.seen.append((request.url.path, request.headers.get("content-type", ""), body))
            headers = {"x-modelport-units": UNITS[request.url.path], "x-prompt-tokens": "0"}
            return JSONResponse([{"label": "cat", "score": 0.9}], headers=headers)

        self.app = Starlette(routes=[Path_(p, task, methods=["POST"]) for p in UNITS])


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Replica, Store, UsageLog]]:
    monkeypatch.setenv("MODELPORT_MAX_IMAGE_BODY", str(IMAGE_LIMIT))
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    usage = UsageLog(store.usage, audit=store.audit, texts=store.texts)
    replica = Replica()
    with serving(replica.app, interface="asgi3") as replica_url:
        table = RoutingTable()
        route = Route("r1", replica_url, 1, token="replica-token")
        view = EndpointView("default", "vision", EndpointType.PUBLIC, Intent.ACTIVE, EndpointState.RUNNING,
                            "", (route,), task="image-classification")  # fmt: skip
        table.publish({("default", "vision"): view})

        async def wake_up(namespace: str, name: str) -> None:
            raise AssertionError("the endpoint is running")

        # GatewaySettings() reads the limits from the environment, as `modelport up` does
        upstream = Upstream()
        gateway = Gateway(table, KeyRing(token_hash("admin")), upstream, wake_up, usage, GatewayMetrics(),
                          GatewaySettings())  # fmt: skip

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "lifespan":
                await gateway.asgi(scope, receive, send)
                return
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await upstream.close()  # on the loop its connections were made on
            await send({"type": "lifespan.shutdown.complete"})

        with serving(app, interface="asgi3") as gateway_url:
            yield f"{gateway_url}/endpoints/default/vision", replica, store, usage
    store.close()


def records(store: Store, usage: UsageLog, count: int) -> list[dict[str, Any]]:
    """The usage rows once `count` requests were recorded (each is, as its answer ends)."""
    deadline = time.monotonic() + 10
    while usage.pending < count:
        assert time.monotonic() < deadline, f"{usage.pending} of {count} requests recorded"
        time.sleep(0.02)
    asyncio.run(usage.flush())
    from sqlalchemy import select

    from modelport.store import tables

    t = tables.usage_records
    with store.engine.connect() as conn:
        query = select(t.c.path, t.c.status, t.c.prompt_tokens, t.c.units).order_by(t.c.id)
        return [dict(row._mapping) for row in conn.execute(query)]


def test_task_payloads_pass_byte_for_byte_are_limited_per_type_and_metered_in_units(
    setup: tuple[str, Replica, Store, UsageLog],
) -> None:
    url, replica, store, usage = setup
    with httpx.Client(timeout=30) as client:
        image = client.post(f"{url}/", content=PNG, headers={"content-type": "image/png"})
        assert image.status_code == 200, image.text
        assert image.json() == [{"label": "cat", "score": 0.9}]
        assert replica.seen[-1] == ("/", "image/png", PNG)  # byte for byte, with its type

        form = client.build_request(
            "POST",
            f"{url}/v1/audio/transcriptions",
            files={"file": ("a.wav", WAV, "audio/wav")},
            data={"model": "whisper"},
        )
        sent = form.read()
        upload = client.send(form)
        assert upload.status_code == 200, upload.text
        path, content_type, body = replica.seen[-1]
        assert path == "/v1/audio/transcriptions" and body == sent
        assert content_type == form.headers["content-type"]  # the boundary with it
        assert content_type.startswith("multipart/form-data; boundary=")

        big = b"\x89PNG\r\n\x1a\n" + b"\x00" * IMAGE_LIMIT  # one image past the limit
        too_large = client.post(f"{url}/", content=big, headers={"content-type": "image/png"})
        assert too_large.status_code == 413
        assert too_large.json()["error_type"] == "validation"  # the task route's (TGI/TEI) shape
        assert str(IMAGE_LIMIT) in too_large.json()["error"]

        video = client.post(
            f"{url}/", content=b"\x00\x00\x00\x18ftypmp42", headers={"content-type": "video/mp4"}
        )
        assert video.status_code == 415 and "video/mp4" in video.json()["error"]
        wrong = client.post(
            f"{url}/v1/audio/transcriptions", content=PNG, headers={"content-type": "image/png"}
        )
        assert wrong.status_code == 415  # in OpenAI's shape on an OpenAI route
        assert wrong.json()["error"]["code"] == "unsupported_media_type"
    assert len(replica.seen) == 2  # neither refusal reached the replica

    rows = records(store, usage, 5)
    # (a refusal is recorded before its answer is sent, a relayed answer once it has ended)
    assert sorted(((r["path"], r["status"], r["units"]) for r in rows), key=str) == [
        ("/", 200, {"images": 1.0, "pixels": 4096.0}),
        ("/", 413, None),
        ("/", 415, None),
        ("/v1/audio/transcriptions", 200, {"audio_seconds": 3.25}),
        ("/v1/audio/transcriptions", 415, None),
    ]
    assert all(r["prompt_tokens"] == 0 for r in rows)  # media are not tokens
    [vision] = store.usage.totals("endpoint", None, None)
    assert vision["units"] == {"audio_seconds": 3.25, "images": 1.0, "pixels": 4096.0}
