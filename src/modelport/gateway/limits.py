"""Per-key limits: requests per minute, tokens per minute and a token budget per period.

Requests and tokens per minute are token buckets (capacity = the per-minute figure, refilled
continuously), so a key may burst up to its minute's worth and then runs at the steady rate.
The budget counts tokens per calendar period (UTC hour, day or month).

A request's tokens are only known once its answer is done, so admission reserves what the
request may use (the gateway's estimate of its prompt plus its output allowance: metering.py)
and `settle` replaces the reservation with the real charge when it ends, however it ends.
Every reservation of a key that is still outstanding counts against its tokens per minute and
its budget, so N concurrent requests cannot together overshoot a budget N-fold: a request is
admitted only while used + reserved + its own estimate fits the budget. A request larger than
a minute's worth of tokens waits for a full bucket (with nothing else reserved) and then takes
it below zero, which delays the key's next requests until it refills. What a request really
uses may differ from its estimate; the difference is charged (or given back) when it settles.

Pure bookkeeping: the caller passes `now` (seconds, monotonic or wall, consistently) and the
wall-clock time for budget periods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modelport.auth.api_keys import Principal

PERIODS = ("hour", "day", "month")
IN_FLIGHT_RETRY_S = 1  # refused only because of requests in flight: they settle soon


def period_start(period: str, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    if period == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown budget period {period!r}: use one of {', '.join(PERIODS)}")


def period_end(period: str, at: datetime) -> datetime:
    start = period_start(period, at)
    if period == "hour":
        return start + timedelta(hours=1)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass
class Bucket:
    level: float
    at: float

    def refill(self, capacity: float, now: float) -> None:
        self.level = min(capacity, self.level + (now - self.at) * capacity / 60.0)
        self.at = now


@dataclass(frozen=True)
class Refusal:
    reason: str  # requests | tokens | budget
    message: str
    retry_after_s: int
    limit: int
    remaining: int = 0


@dataclass
class Budget:
    start: datetime
    used: int = 0


@dataclass
class Reservation:
    """The tokens held for one admitted request until `Limiter.settle` charges what it used."""

    who: Principal
    tokens: int
    settled: bool = False


@dataclass
class Limiter:
    requests: dict[str, Bucket] = field(default_factory=dict)
    tokens: dict[str, Bucket] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)  # per key: outstanding reservations

    def check(self, who: Principal, now: float, wall: datetime) -> Refusal | None:
        """Whether a request of this key could run at all (before its body is read, so a key
        over its limits is refused before it uploads). Counts nothing."""
        return self._refusal(who, 0, now, wall)

    def admit(self, who: Principal, tokens: int, now: float, wall: datetime) -> Refusal | Reservation:
        """Count one request and reserve `tokens` (its estimated prompt + output allowance)
        against the key's limits, or say why (and for how long) it may not run."""
        refusal = self._refusal(who, tokens, now, wall)
        if refusal is not None:
            return refusal
        key = who.key_id
        if key is not None:
            if who.requests_per_minute is not None:
                self._bucket(self.requests, key, who.requests_per_minute, now).level -= 1
            self.reserved[key] = self.reserved.get(key, 0) + tokens
        return Reservation(who, tokens)

    def settle(self, reservation: Reservation, tokens: int, now: float, wall: datetime) -> None:
        """Replace a reservation with the tokens the request really used (0 when it never ran).
        Only the first call counts, so every way a request can end may call it."""
        if reservation.settled:
            return
        reservation.settled = True
        key = reservation.who.key_id
        if key is None:
            return
        left = self.reserved.get(key, 0) - reservation.tokens
        if left > 0:
            self.reserved[key] = left
        else:
            self.reserved.pop(key, None)
        self.charge(reservation.who, tokens, now, wall)

    def charge(self, who: Principal, tokens: int, now: float, wall: datetime) -> None:
        """Charge tokens (prompt + completion) to the key."""
        key = who.key_id
        if key is None or tokens <= 0:
            return
        if who.tokens_per_minute is not None:
            self._bucket(self.tokens, key, who.tokens_per_minute, now).level -= tokens
        self._budget(key, who.budget_period, wall).used += tokens

    def seed_budgets(self, used: dict[str, int], period: str, wall: datetime) -> None:
        """Start budgets from the usage already stored this period (after a restart)."""
        start = period_start(period, wall)
        for key, tokens in used.items():
            self.budgets[key] = Budget(start, tokens)

    def _refusal(self, who: Principal, tokens: int, now: float, wall: datetime) -> Refusal | None:
        key = who.key_id
        if key is None:
            return None
        reserved = self.reserved.get(key, 0)
        need = max(tokens, 1)
        if who.token_budget is not None:
            refusal = self._over_budget(who, key, need, reserved, wall)
            if refusal is not None:
                return refusal
        if who.tokens_per_minute is not None:
            per_minute = who.tokens_per_minute
            available = self._bucket(self.tokens, key, per_minute, now).level - reserved
            wanted = min(need, per_minute)  # more than a minute's worth: a full bucket will do
            if wanted > available:
                wait = (wanted - available) * 60.0 / per_minute
                return Refusal(
                    "tokens",
                    f"key {key} is over its limit of {per_minute} tokens per minute"
                    + (f" ({reserved} reserved by requests in flight)" if reserved else ""),
                    max(1, math.ceil(wait)),
                    per_minute,
                    max(0, math.floor(available)),
                )
        if who.requests_per_minute is not None:
            requests = self._bucket(self.requests, key, who.requests_per_minute, now)
            if requests.level < 1:
                wait = (1 - requests.level) * 60.0 / who.requests_per_minute
                return Refusal(
                    "requests",
                    f"key {key} is over its limit of {who.requests_per_minute} requests per minute",
                    max(1, math.ceil(wait)),
                    who.requests_per_minute,
                )
        return None

    def _over_budget(
        self, who: Principal, key: str, need: int, reserved: int, wall: datetime
    ) -> Refusal | None:
        limit, period = who.token_budget or 0, who.budget_period
        used = self._budget(key, period, wall).used
        left = limit - used - reserved
        if need <= left:
            return None
        until_next = (period_end(period, wall) - wall).total_seconds()
        if used >= limit:
            message = f"key {key} used its budget of {limit} tokens this {period}"
        elif need <= limit - used:  # fits once the requests in flight have settled
            return Refusal(
                "budget",
                f"key {key} has {max(0, left)} of its {limit} tokens this {period} left, "
                f"{reserved} being reserved by requests in flight, and this request may use {need}",
                IN_FLIGHT_RETRY_S,
                limit,
                max(0, left),
            )
        else:
            message = (
                f"key {key} has {limit - used} of its {limit} tokens this {period} left and this "
                f"request may use {need} (its prompt and max_tokens): ask for fewer tokens, or wait"
            )
        return Refusal("budget", message, max(1, math.ceil(until_next)), limit, max(0, left))

    def _bucket(self, buckets: dict[str, Bucket], key: str, per_minute: int, now: float) -> Bucket:
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = Bucket(float(per_minute), now)
        else:
            bucket.refill(per_minute, now)
        return bucket

    def _budget(self, key: str, period: str, wall: datetime) -> Budget:
        start = period_start(period, wall)
        budget = self.budgets.get(key)
        if budget is None or budget.start != start:
            budget = self.budgets[key] = Budget(start)
        return budget
