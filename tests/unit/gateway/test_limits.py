"""Per-key limits: token buckets for requests and tokens, calendar budgets."""

from __future__ import annotations

from datetime import UTC, datetime

from modelport.gateway.keys import Principal
from modelport.gateway.limits import Limiter, period_end, period_start

WALL = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def key(**limits: object) -> Principal:
    return Principal(key_id="k1", scopes=frozenset({"inference"}), endpoints=("*",), **limits)  # type: ignore[arg-type]


def test_requests_per_minute_bursts_then_refills_at_the_steady_rate() -> None:
    limiter, who = Limiter(), key(requests_per_minute=60)
    assert all(limiter.admit(who, 0.0, WALL) is None for _ in range(60))
    refused = limiter.admit(who, 0.0, WALL)
    assert refused is not None and refused.reason == "requests" and refused.retry_after_s == 1
    assert limiter.admit(who, 0.5, WALL) is not None  # half a token back: not yet
    assert limiter.admit(who, 1.0, WALL) is None  # one per second at 60/min


def test_tokens_per_minute_are_charged_after_the_answer_and_delay_the_next_request() -> None:
    limiter, who = Limiter(), key(tokens_per_minute=600)
    assert limiter.admit(who, 0.0, WALL) is None
    limiter.charge(who, 1200, 0.0, WALL)  # one large answer: 600 over
    refused = limiter.admit(who, 0.0, WALL)
    assert refused is not None and refused.reason == "tokens"
    assert refused.retry_after_s == 61  # (600 + 1) tokens at 10 per second
    assert limiter.admit(who, 61.0, WALL) is None


def test_budget_counts_per_calendar_period_and_resets_with_the_next() -> None:
    limiter, who = Limiter(), key(token_budget=100, budget_period="day")
    limiter.charge(who, 100, 0.0, WALL)
    refused = limiter.admit(who, 0.0, WALL)
    assert refused is not None and refused.reason == "budget"
    assert refused.retry_after_s == 11 * 3600 + 30 * 60  # until midnight UTC
    tomorrow = datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    assert limiter.admit(who, 1.0, tomorrow) is None


def test_seeded_budget_survives_a_restart() -> None:
    limiter, who = Limiter(), key(token_budget=100, budget_period="month")
    limiter.seed_budgets({"k1": 100}, "month", WALL)
    assert limiter.admit(who, 0.0, WALL) is not None


def test_admin_token_and_unlimited_keys_are_never_limited() -> None:
    limiter = Limiter()
    admin = Principal(key_id=None, scopes=frozenset({"admin"}), endpoints=("*",))
    assert all(limiter.admit(p, 0.0, WALL) is None for p in (admin, key()) for _ in range(1000))


def test_periods() -> None:
    assert period_start("hour", WALL) == datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert period_end("month", WALL) == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end("month", datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
