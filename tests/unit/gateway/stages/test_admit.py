"""Whether a request may run now (gateway/stages/admit.py over a real Limiter and AdmissionTable):
the key's limits with their 429 headers, the tokens reserved, the endpoint's concurrency slots
and its places for held requests."""

from __future__ import annotations

import asyncio
import json

import pytest

from modelport.gateway.admission import AdmissionTable
from modelport.gateway.errors import GatewayError
from modelport.gateway.limits import Limiter
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.releases import Releases
from modelport.gateway.stages.admit import Admitter
from modelport.protocol.errors import APIError
from modelport.spec.traffic import RecordText, Traffic

from ..neighbours import NOW, context, endpoint, keyring, principal

BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
).encode()


def admitter(max_held: int = 1000) -> Admitter:
    return Admitter(Limiter(), AdmissionTable(), GatewayMetrics(), max_held, lambda: 1.0, lambda: NOW)


def refused_count(a: Admitter, endpoint: str, reason: str) -> float:
    value = a.metrics.registry.get_sample_value(
        "modelport_gateway_refused_total", {"namespace": "default", "endpoint": endpoint, "reason": reason}
    )
    return value or 0.0


def test_a_key_over_its_requests_per_minute_is_refused_before_its_upload() -> None:
    a = admitter()
    ring, _, key = keyring(requests_per_minute=1)
    ctx = context(who=principal(ring, key))
    a.check_key(ctx)
    a.admit(ctx, endpoint(), BODY)  # the minute's one request
    with pytest.raises(GatewayError) as err:
        a.check_key(ctx)
    assert err.value.status == 429 and err.value.code == "rate_limit_exceeded"
    assert err.value.headers["x-ratelimit-limit-requests"] == "1"
    assert err.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(err.value.headers["retry-after"]) >= 1
    assert refused_count(a, "chat", "requests") == 1


def test_admission_reserves_the_calls_estimated_tokens_until_settled() -> None:
    a = admitter()
    ring, key_id, key = keyring(token_budget=10_000)
    admitted = a.admit(context(who=principal(ring, key)), endpoint(), BODY)
    assert admitted.reservation is not None
    assert a.limiter.reserved[key_id] == admitted.call.reserve == admitted.reservation.tokens > 50
    a.limiter.settle(admitted.reservation, 10, 1.0, NOW)
    assert key_id not in a.limiter.reserved


def test_a_call_that_cannot_fit_the_budget_is_a_429_insufficient_quota() -> None:
    a = admitter()
    ring, _, key = keyring(token_budget=20)
    with pytest.raises(GatewayError) as err:
        a.admit(context(who=principal(ring, key)), endpoint(), BODY)
    assert err.value.status == 429 and err.value.code == "insufficient_quota"
    assert err.value.headers["x-ratelimit-limit-budget"] == "20"
    assert refused_count(a, "chat", "budget") == 1


def test_an_anonymous_call_reserves_nothing_and_a_transcript_only_when_opted_in() -> None:
    a = admitter()
    assert a.admit(context(), endpoint(), BODY).reservation is None
    assert a.admit(context(), endpoint(), BODY).transcript is None
    keeps = endpoint(traffic=Traffic(record_text=RecordText(retention_days=1)))
    assert a.admit(context(), keeps, BODY).transcript is not None


def test_hostile_bodies_and_queries_are_400s() -> None:
    a = admitter()
    with pytest.raises(APIError) as err:
        a.admit(context(), endpoint(), b"[" * 100_000)
    assert err.value.status == 400
    with pytest.raises(APIError) as err:
        a.admit(context(query=None), endpoint(), BODY)  # a query that is not UTF-8
    assert err.value.status == 400


def test_slots_past_max_concurrent_wait_in_order_and_a_full_queue_is_refused() -> None:
    async def go() -> None:
        a = admitter()
        view = endpoint(traffic=Traffic(max_concurrent=1, max_queue=1))
        first, second = Releases(), Releases()
        assert await a.take_slot(view, first) == 0.0  # (the test's clock stands still)
        waiting = asyncio.create_task(a.take_slot(view, second))
        await asyncio.sleep(0)
        assert not waiting.done()
        with pytest.raises(GatewayError) as err:
            await a.take_slot(view, Releases())
        assert err.value.status == 429 and err.value.code == "endpoint_busy"
        assert err.value.headers == {"retry-after": "1"}
        assert refused_count(a, "chat", "queue_full") == 1
        first.release_all()  # the slot passes to the one waiting
        await asyncio.wait_for(waiting, 1)
        second.release_all()
        assert a.admissions.of("default", "chat").outstanding == 0

    asyncio.run(go())


def test_a_request_that_leaves_the_queue_gives_its_place_up() -> None:
    async def go() -> None:
        a = admitter()
        view = endpoint(traffic=Traffic(max_concurrent=1, max_queue=1))
        held = Releases()
        await a.take_slot(view, held)
        waiting = asyncio.create_task(a.take_slot(view, Releases()))
        await asyncio.sleep(0)
        waiting.cancel()  # its client left
        with pytest.raises(asyncio.CancelledError):
            await waiting
        held.release_all()
        assert a.admissions.of("default", "chat").outstanding == 0

    asyncio.run(go())


def test_places_for_held_requests_are_bounded_and_given_back() -> None:
    a = admitter(max_held=1)
    view = endpoint()
    releases = Releases()
    a.take_hold_place(view, releases)
    with pytest.raises(GatewayError) as err:
        a.take_hold_place(view, Releases())
    assert err.value.status == 429 and err.value.headers == {"retry-after": "5"}
    assert refused_count(a, "chat", "hold_full") == 1
    releases.release_all()
    assert a.admissions.of("default", "chat").held == 0
    a.take_hold_place(view, Releases())
