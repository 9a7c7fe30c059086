"""The gateway settles every admitted request, also one that fails in an unexpected way.

An in-process Gateway over httpx's ASGI transport; the usage log is a list (this tests the
gateway's bookkeeping, not the store) and waking the endpoint fails as a store outage would.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from modelport.auth.admin_token import token_hash
from modelport.auth.api_keys import KeyRing, new_key, secret_hash
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.proxy import Gateway
from modelport.gateway.routing import EndpointView, RoutingTable
from modelport.gateway.upstream import Upstream
from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.store.records import ApiKeyRecord, UsageRecord


class Recorded:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def record(self, record: UsageRecord, text: Any = None) -> None:
        self.records.append(record)


def test_a_request_that_fails_unexpectedly_releases_its_reservation_and_is_recorded() -> None:
    key_id, key = new_key()
    ring = KeyRing(token_hash("admin-token"))
    ring.put(ApiKeyRecord(id=key_id, name="k", secret_hash=secret_hash(key), scopes=["inference"],
                          endpoints=["*"], requests_per_minute=None, tokens_per_minute=None,
                          token_budget=100_000, budget_period="day", created_at=datetime.now(UTC),
                          expires_at=None, revoked_at=None, rotated_to=None))  # fmt: skip
    table = RoutingTable()
    zero = EndpointView("default", "chat", EndpointType.PROTECTED, Intent.SCALED_TO_ZERO,
                        EndpointState.SCALED_TO_ZERO, "")  # fmt: skip
    table.publish({("default", "chat"): zero})

    async def wake_up(namespace: str, name: str) -> None:
        raise RuntimeError("the store is unreachable")

    usage = Recorded()
    gateway = Gateway(table, ring, Upstream(), wake_up, usage, GatewayMetrics())  # type: ignore[arg-type]

    async def call() -> None:
        transport = httpx.ASGITransport(app=gateway.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
            with pytest.raises(RuntimeError):
                await client.post("/endpoints/default/chat/v1/chat/completions", json=body,
                                  headers={"authorization": f"Bearer {key}"})  # fmt: skip

    asyncio.run(call())
    assert gateway.limiter.reserved.get(key_id, 0) == 0  # nothing stays reserved for the key
    assert [r.status for r in usage.records] == [500]
