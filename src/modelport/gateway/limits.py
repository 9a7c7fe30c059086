"""Per-key limits: requests per minute, tokens per minute and a token budget per period.

Requests and tokens per minute are token buckets (capacity = the per-minute figure, refilled
continuously), so a key may burst up to its minute's worth and then runs at the steady rate.
Tokens are only known once an answer is done, so they are charged afterwards: a request is
admitted while the token bucket is positive, and a large answer can push it below zero, which
then delays the key's next requests until it refills. The budget counts tokens per calendar
period (UTC hour, day or month). Pure bookkeeping: the caller passes `now` (seconds, monotonic
or wall, consistently) and the wall-clock time for budget periods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modelport.gateway.keys import Principal

PERIODS = ("hour", "day", "month")


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


@dataclass
class Budget:
    start: datetime
    used: int = 0


@dataclass
class Limiter:
    requests: dict[str, Bucket] = field(default_factory=dict)
    tokens: dict[str, Bucket] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)

    def admit(self, who: Principal, now: float, wall: datetime) -> Refusal | None:
        """Count one request against the key's limits, or say why (and for how long) it may not run."""
        key = who.key_id
        if key is None:
            return None
        if who.token_budget is not None:
            budget = self._budget(key, who.budget_period, wall)
            if budget.used >= who.token_budget:
                wait = (period_end(who.budget_period, wall) - wall).total_seconds()
                return Refusal(
                    "budget",
                    f"key {key} used its budget of {who.token_budget} tokens this {who.budget_period}",
                    max(1, math.ceil(wait)),
                    who.token_budget,
                )
        if who.tokens_per_minute is not None:
            tokens = self._bucket(self.tokens, key, who.tokens_per_minute, now)
            if tokens.level <= 0:
                wait = (1 - tokens.level) * 60.0 / who.tokens_per_minute
                return Refusal(
                    "tokens",
                    f"key {key} is over its limit of {who.tokens_per_minute} tokens per minute",
                    max(1, math.ceil(wait)),
                    who.tokens_per_minute,
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
            requests.level -= 1
        return None

    def charge(self, who: Principal, tokens: int, now: float, wall: datetime) -> None:
        """Charge a finished request's tokens (prompt + completion) to the key."""
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
