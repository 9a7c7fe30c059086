"""Per-key limits: token buckets for requests and tokens, calendar budgets, and the tokens a
request reserves from admission until it settles."""

from __future__ import annotations

from datetime import UTC, datetime

from modelport.auth.api_keys import Principal
from modelport.gateway.limits import Limiter, Refusal, Reservation, period_end, period_start

WALL = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def key(**limits: object) -> Principal:
    return Principal(key_id="k1", scopes=frozenset({"inference"}), endpoints=("*",), **limits)  # type: ignore[arg-type]


def admitted(result: Refusal | Reservation) -> Reservation:
    assert isinstance(result, Reservation), result
    return result


def refused(result: Refusal | Reservation) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_requests_per_minute_bursts_then_refills_at_the_steady_rate() -> None:
    limiter, who = Limiter(), key(requests_per_minute=60)
    assert all(isinstance(limiter.admit(who, 0, 0.0, WALL), Reservation) for _ in range(60))
    refusal = refused(limiter.admit(who, 0, 0.0, WALL))
    assert refusal.reason == "requests" and refusal.retry_after_s == 1
    assert limiter.check(who, 0.0, WALL) is not None
    refused(limiter.admit(who, 0, 0.5, WALL))  # half a token back: not yet
    admitted(limiter.admit(who, 0, 1.0, WALL))  # one per second at 60/min


def test_check_before_the_body_counts_nothing() -> None:
    limiter, who = Limiter(), key(requests_per_minute=1, token_budget=10)
    assert all(limiter.check(who, 0.0, WALL) is None for _ in range(5))
    admitted(limiter.admit(who, 10, 0.0, WALL))
    assert limiter.check(who, 0.0, WALL) is not None  # the one request, and the budget reserved


def test_tokens_per_minute_charged_beyond_the_reservation_delay_the_next_request() -> None:
    limiter, who = Limiter(), key(tokens_per_minute=600)
    reservation = admitted(limiter.admit(who, 100, 0.0, WALL))
    limiter.settle(reservation, 1200, 0.0, WALL)  # used far more than estimated: 600 over
    refusal = refused(limiter.admit(who, 1, 0.0, WALL))
    assert refusal.reason == "tokens"
    assert refusal.retry_after_s == 61  # (600 + 1) tokens at 10 per second
    admitted(limiter.admit(who, 1, 61.0, WALL))


def test_concurrent_requests_reserve_tokens_per_minute_until_they_settle() -> None:
    limiter, who = Limiter(), key(tokens_per_minute=100)
    first, second = (admitted(limiter.admit(who, 40, 0.0, WALL)) for _ in range(2))
    refusal = refused(limiter.admit(who, 40, 0.0, WALL))  # 80 of 100 reserved
    assert refusal.reason == "tokens" and refusal.remaining == 20 and "reserved" in refusal.message
    limiter.settle(first, 10, 0.0, WALL)
    admitted(limiter.admit(who, 40, 0.0, WALL))  # 90 left, 40 reserved by the second
    limiter.settle(second, 0, 0.0, WALL)


def test_a_request_larger_than_a_minute_of_tokens_runs_alone_on_a_full_bucket() -> None:
    limiter, who = Limiter(), key(tokens_per_minute=100)
    big = admitted(limiter.admit(who, 250, 0.0, WALL))
    refused(limiter.admit(who, 1, 0.0, WALL))  # all of the bucket is reserved
    limiter.settle(big, 250, 0.0, WALL)
    assert refused(limiter.admit(who, 250, 0.0, WALL)).retry_after_s == 150  # -150 to a full 100


def test_twenty_concurrent_requests_against_a_budget_that_fits_five_admit_five() -> None:
    limiter, who = Limiter(), key(token_budget=100, budget_period="day")
    results = [limiter.admit(who, 20, 0.0, WALL) for _ in range(20)]
    reservations = [r for r in results if isinstance(r, Reservation)]
    assert len(reservations) == 5
    refusals = [r for r in results if isinstance(r, Refusal)]
    assert {r.reason for r in refusals} == {"budget"}
    assert refusals[0].retry_after_s == 1 and "in flight" in refusals[0].message  # fits once they settle
    for reservation in reservations:
        limiter.settle(reservation, 18, 1.0, WALL)  # each used a little less than it reserved
    assert limiter.budgets["k1"].used == 90 and "k1" not in limiter.reserved
    refused(limiter.admit(who, 20, 1.0, WALL))  # 10 left
    admitted(limiter.admit(who, 10, 1.0, WALL))


def test_settling_twice_charges_and_releases_once() -> None:
    limiter, who = Limiter(), key(token_budget=100)
    first, second = admitted(limiter.admit(who, 30, 0.0, WALL)), admitted(limiter.admit(who, 30, 0.0, WALL))
    limiter.settle(first, 25, 0.0, WALL)
    limiter.settle(first, 25, 0.0, WALL)  # a second ending of the same request changes nothing
    assert limiter.reserved == {"k1": 30} and limiter.budgets["k1"].used == 25
    limiter.settle(second, 0, 0.0, WALL)  # refused after admission: the reservation goes back
    assert limiter.reserved == {} and limiter.budgets["k1"].used == 25


def test_budget_counts_per_calendar_period_and_resets_with_the_next() -> None:
    limiter, who = Limiter(), key(token_budget=100, budget_period="day")
    limiter.settle(admitted(limiter.admit(who, 50, 0.0, WALL)), 100, 0.0, WALL)
    refusal = refused(limiter.admit(who, 1, 0.0, WALL))
    assert refusal.reason == "budget" and "used its budget" in refusal.message
    assert refusal.retry_after_s == 11 * 3600 + 30 * 60  # until midnight UTC
    tomorrow = datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    admitted(limiter.admit(who, 1, 1.0, tomorrow))


def test_a_request_larger_than_the_budget_left_is_refused_until_the_next_period() -> None:
    limiter, who = Limiter(), key(token_budget=100, budget_period="hour")
    limiter.settle(admitted(limiter.admit(who, 60, 0.0, WALL)), 60, 0.0, WALL)
    refusal = refused(limiter.admit(who, 41, 0.0, WALL))
    assert refusal.retry_after_s == 30 * 60 and refusal.remaining == 40 and "fewer tokens" in refusal.message
    admitted(limiter.admit(who, 40, 0.0, WALL))


def test_seeded_budget_survives_a_restart() -> None:
    limiter, who = Limiter(), key(token_budget=100, budget_period="month")
    limiter.seed_budgets({"k1": 100}, "month", WALL)
    refused(limiter.admit(who, 0, 0.0, WALL))
    assert limiter.check(who, 0.0, WALL) is not None


def test_admin_token_and_unlimited_keys_are_never_limited() -> None:
    limiter = Limiter()
    admin = Principal(key_id=None, scopes=frozenset({"admin"}), endpoints=("*",))
    for who in (admin, key()):
        assert all(isinstance(limiter.admit(who, 10**9, 0.0, WALL), Reservation) for _ in range(1000))


def test_periods() -> None:
    assert period_start("hour", WALL) == datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert period_end("month", WALL) == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end("month", datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
