"""The control plane's app in-process for API tests: `create_control_app` on a SQLite file, a
runtime that starts nothing, and an httpx client over the ASGI transport (lifespan included, so
the loop and the store close as in `up`); and the check that a reply is the API's error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from modelport.auth.admin_token import token_hash
from modelport.control.app import ControlConfig, create_control_app
from modelport.control.reconcile.autoscaler import AutoscalerSettings
from tests.support.fake_runtimes import IdleRuntime

TOKEN = "mp_admin_api-tests"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def control_api(
    data: Path, max_body_bytes: int = 64 * 1024, allow_custom_commands: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    config = ControlConfig(
        database_url=f"sqlite:///{data / 'store.db'}",
        public_url="http://testserver",
        admin_token_hash=token_hash(TOKEN),
        replica_log_dir=data / "logs",
        max_body_bytes=max_body_bytes,
        allow_custom_commands=allow_custom_commands,
        autoscaler=AutoscalerSettings(scrape_engines=False),
    )
    app = create_control_app(config, IdleRuntime())
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 4000))
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def run_api(data: Path, scenario: Callable[[httpx.AsyncClient], Awaitable[None]], **options: Any) -> None:
    """Run `scenario` against a fresh control plane (options: those of `control_api`)."""

    async def main() -> None:
        async with control_api(data, **options) as http:
            await scenario(http)

    asyncio.run(main())


def api_error(reply: httpx.Response, status: int, error_type: str, field: str | None = None) -> str:
    """Check the reply is the API's error, {"error", "error_type", "field"?}; its message."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) <= {"error", "error_type", "field"} and isinstance(body["error"], str) and body["error"]
    assert body["error_type"] == error_type, body
    assert body.get("field") == field, body
    return str(body["error"])
