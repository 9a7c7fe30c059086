"""The SDK's core as pure generators (fake clock), and both drivers over an in-process transport."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from modelport.sdk import AsyncClient, Client, core
from modelport.sdk.errors import (
    Conflict,
    ConnectError,
    EndpointFailed,
    NotFound,
    ValidationError,
    WaitTimeout,
)
from tests.support.server_process import free_port


def endpoint(state: str, message: str = "") -> dict[str, Any]:
    return {
        "name": "chat", "type": "protected", "healthRoute": "/health",
        "compute": {"scaling": {"minReplica": 1, "maxReplica": 1}},
        "model": {"repository": "/m", "revision": None, "args": []},
        "status": {"state": state, "url": "http://cp/endpoints/default/chat", "message": message,
                   "readyReplica": 1 if state == "running" else 0, "targetReplica": 1,
                   "createdAt": "2026-11-22T12:00:00Z", "updatedAt": "2026-11-22T12:00:01Z", "replicas": []},
    }  # fmt: skip


def drive(op: core.Operation, replies: list[core.Reply]) -> tuple[Any, list[core.Step]]:
    """Run an operation against scripted replies; sleeps take no time."""
    steps: list[core.Step] = []
    reply: core.Reply | None = None
    try:
        while True:
            step = op.send(reply)
            steps.append(step)
            reply = None if isinstance(step, core.Sleep) else replies.pop(0)
    except StopIteration as done:
        return done.value, steps


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_wait_returns_once_running_and_healthy() -> None:
    op = core.wait_for_ready("default", "chat", 60, 1.0, FakeClock())
    replies = [
        core.Reply(200, endpoint("initializing")),
        core.Reply(200, endpoint("running")),
        core.Reply(503, {"error": "warming"}),  # health not yet 200: keep waiting
        core.Reply(200, endpoint("running")),
        core.Reply(200, ""),
    ]
    result, steps = drive(op, replies)
    assert result["status"]["state"] == "running"
    calls = [s for s in steps if isinstance(s, core.Call)]
    assert calls[2].path == "http://cp/endpoints/default/chat/health"
    assert sum(isinstance(s, core.Sleep) for s in steps) == 2


def test_wait_raises_on_failure_and_timeout() -> None:
    with pytest.raises(EndpointFailed, match="no weights"):
        drive(
            core.wait_for_ready("default", "chat", 60, 1.0, FakeClock()),
            [core.Reply(200, endpoint("failed", "no weights"))],
        )
    replies = [core.Reply(200, endpoint("initializing")) for _ in range(10)]
    with pytest.raises(WaitTimeout, match="initializing"):
        drive(core.wait_for_ready("default", "chat", 3, 1.0, FakeClock()), replies)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"error": "no endpoint", "error_type": "not_found"}, NotFound),
        (409, {"error": "exists", "error_type": "conflict", "field": "name"}, Conflict),
        (422, {"error": "bad", "error_type": "validation", "field": "compute.scaling"}, ValidationError),
    ],
)
def test_errors_are_typed(status: int, body: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        core.check(core.Reply(status, body))
    assert getattr(info.value, "field", None) == body.get("field")


def test_update_payload_is_partial() -> None:
    assert core.update_payload(revision="v2") == {"model": {"revision": "v2"}}
    assert core.update_payload(min_replicas=2) == {"compute": {"scaling": {"minReplica": 2}}}


def server(requests: list[httpx.Request]) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/health"):
            return httpx.Response(200)
        if request.method == "POST" and request.url.path == "/v2/endpoint/default":
            return httpx.Response(201, json=endpoint("pending"))
        return httpx.Response(200, json=endpoint("running"))

    return handle


def test_sync_and_async_clients_make_the_same_calls(tmp_path: Any) -> None:
    sync_requests: list[httpx.Request] = []
    client = Client("http://cp", token="t0k", transport=httpx.MockTransport(server(sync_requests)))
    ep = client.create_endpoint("chat", model="/m", min_replicas=1, max_replicas=2)
    ep.wait(timeout=5, poll_interval=0)
    ep.pause()

    async_requests: list[httpx.Request] = []

    async def run() -> None:
        aclient = AsyncClient("http://cp", token="t0k", transport=httpx.MockTransport(server(async_requests)))
        aep = await aclient.create_endpoint("chat", model="/m", min_replicas=1, max_replicas=2)
        await aep.wait(timeout=5, poll_interval=0)
        await aep.pause()
        await aclient.close()

    asyncio.run(run())
    seen = [(r.method, str(r.url), r.content) for r in sync_requests]
    assert seen == [(r.method, str(r.url), r.content) for r in async_requests]
    assert seen[0][0:2] == ("POST", "http://cp/v2/endpoint/default")
    assert json.loads(seen[0][2])["compute"]["scaling"] == {
        "minReplica": 1,
        "maxReplica": 2,
        "scaleToZeroTimeout": None,
    }
    assert seen[-1][0:2] == ("POST", "http://cp/v2/endpoint/default/chat/pause")
    assert all(r.headers["authorization"] == "Bearer t0k" for r in sync_requests)
    assert ep.state == "running" and ep.ready_replicas == 1


def test_unreachable_control_plane_says_what_to_do() -> None:
    with pytest.raises(ConnectError, match="modelport up"):
        Client(f"http://127.0.0.1:{free_port()}", token="x").list_endpoints()
