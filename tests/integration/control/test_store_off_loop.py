"""The control plane never waits on its store on the event loop that the gateway shares.

The whole app (`create_control_app`: API, audit middleware, control loop, autoscaler, key sync,
usage log, retention) runs in-process on SQLite, with a runtime whose replicas are one small
HTTP server on this loop (no engine processes). Every store connection, statement and commit is
watched (loop_thread_guard.py); one made on the loop's thread fails the test, naming its stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from modelport.auth.admin_token import token_hash
from modelport.control.app import ControlConfig, ControlPlaneApp, create_control_app
from modelport.control.reconcile.autoscaler import AutoscalerSettings
from modelport.control.reconcile.loop import LoopSettings
from tests.integration.control.loop_thread_guard import loop_thread_guard
from tests.support.custom_app import build
from tests.support.fake_runtimes import OneServerRuntime

TOKEN = "mp_admin_off-loop-test"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def replica_server() -> AsyncIterator[int]:
    """tests/support/custom_app.py served on this event loop; yields its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build("chat"), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def make_app(tmp_path: Path, port: int) -> tuple[ControlPlaneApp, OneServerRuntime]:
    (tmp_path / "config.json").write_text("{}")  # a model folder, as far as the API checks
    runtime = OneServerRuntime(port)
    config = ControlConfig(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        public_url="http://testserver",
        admin_token_hash=token_hash(TOKEN),
        replica_log_dir=tmp_path / "logs",
        allow_custom_commands=True,
        bootstrap=[{"name": "boot", "model": {"repository": str(tmp_path), "image": custom_image()}}],
        loop=LoopSettings(interval_s=0.05, starting_poll_s=0.02, drain_timeout_s=1.0),
        autoscaler=AutoscalerSettings(interval_s=0.05, scrape_engines=False),
    )
    return create_control_app(config, runtime), runtime


def custom_image() -> dict[str, Any]:
    return {"custom": {"command": ["never-run", "{port}"], "healthRoute": "/health"}}


async def scenario(app: ControlPlaneApp, tmp_path: Path, runtime: OneServerRuntime) -> None:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=ADMIN) as http,
    ):
        body = {"name": "chat", "model": {"repository": str(tmp_path), "image": custom_image()}}
        created = await http.post("/v2/endpoint/default", json=body)
        assert created.status_code == 201, created.text

        async def running() -> bool:
            answer = (await http.get("/v2/endpoint/default/chat")).json()
            return bool(answer["status"]["state"] == "running")

        await until(running, "the endpoint to run")
        assert (await http.get("/v2/endpoint/default")).status_code == 200
        # a new revision: a rollout through the loop
        update = {"model": {"env": {"COLOUR": "blue"}}}
        assert (await http.put("/v2/endpoint/default/chat", json=update)).status_code == 200
        await until(running, "the update to roll out")
        assert (await http.get("/v2/endpoint/default/chat/logs")).status_code == 200
        assert (await http.get("/v2/endpoint/default/chat/events")).status_code == 200

        # inference through the gateway: a usage record, flushed by the usage log's task
        key = (await http.post("/v2/keys", json={"name": "app"})).json()
        chat = {"model": "chat", "messages": [{"role": "user", "content": "one two"}], "max_tokens": 4}
        reply = await http.post(
            "/endpoints/default/chat/v1/chat/completions",
            json=chat,
            headers={"authorization": f"Bearer {key['key']}"},
        )
        assert reply.status_code == 200, reply.text

        async def metered() -> bool:
            usage = (await http.get(f"/v2/keys/{key['id']}/usage")).json()
            return bool(usage["requests"] == 1)

        await until(metered, "the usage log to flush", timeout_s=5.0)
        assert (await http.put(f"/v2/keys/{key['id']}", json={"name": "app2"})).status_code == 200
        rotated = await http.post(f"/v2/keys/{key['id']}/rotate", json={"overlapSeconds": 0})
        assert rotated.status_code == 201, rotated.text
        assert (await http.delete(f"/v2/keys/{rotated.json()['id']}")).status_code == 200
        assert (await http.get("/v2/keys")).status_code == 200
        assert (await http.get("/v2/usage")).status_code == 200
        assert (await http.get("/v2/endpoint/default/chat/metrics")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        # refused calls are audited too (their writes rolled back)
        assert (await http.post("/v2/endpoint/default", json={"name": 5})).status_code == 422

        # the autoscaler takes an idle endpoint to zero; a request wakes it (the gateway holds it)
        idle = {**body, "name": "idle",
                "compute": {"scaling": {"minReplica": 0, "scaleToZeroTimeoutSeconds": 0.3}}}  # fmt: skip
        assert (await http.post("/v2/endpoint/default", json=idle)).status_code == 201

        async def at_zero() -> bool:
            answer = (await http.get("/v2/endpoint/default/idle")).json()
            return bool(answer["status"]["state"] == "scaledToZero")

        await until(at_zero, "the autoscaler to scale the idle endpoint to zero")
        woken = await http.post("/endpoints/default/idle/v1/chat/completions", json=chat)
        assert woken.status_code == 200, woken.text

        assert (await http.post("/v2/endpoint/default/chat/pause")).status_code == 200
        assert (await http.post("/v2/endpoint/default/chat/resume")).status_code == 200
        assert (await http.post("/v2/endpoint/default/chat/scale-to-zero")).status_code == 200
        assert (await http.delete("/v2/endpoint/default/chat")).status_code == 200

        async def gone() -> bool:
            return (await http.get("/v2/endpoint/default/chat")).status_code == 404

        await until(gone, "the endpoint to be removed")
    assert runtime.stopped  # the loop stopped replicas (the rollout's, the delete's, at shutdown)


def test_no_store_io_on_the_event_loop(tmp_path: Path) -> None:
    async def main() -> None:
        async with replica_server() as port:
            app, runtime = await asyncio.to_thread(make_app, tmp_path, port)  # as `up` does: no loop
            with loop_thread_guard() as guard:
                await scenario(app, tmp_path, runtime)
            assert guard.off_loop > 0  # it was listening
            assert not guard.on_loop, guard.report()

    asyncio.run(main())
