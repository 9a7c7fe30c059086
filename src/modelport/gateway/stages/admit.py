"""Whether a request may run now: its key's limits (requests and tokens per minute, budget), then
its endpoint's places: a concurrency slot (maxConcurrent, a bounded maxQueue), or a place among
the requests held while the endpoint starts (MODELPORT_MAX_HELD). Refusals are 429s that say
when to retry, counted by reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from modelport.gateway.admission import AdmissionTable, HoldFull, QueueFull
from modelport.gateway.context import RequestContext
from modelport.gateway.errors import RETRY_AFTER_S, GatewayError
from modelport.gateway.limits import Limiter, Refusal, Reservation
from modelport.gateway.metering import Call, prepare
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.releases import Releases
from modelport.gateway.routing import EndpointView
from modelport.gateway.transcript import Transcript
from modelport.protocol.errors import APIError


@dataclass(frozen=True, slots=True)
class Admitted:
    call: Call  # the request as it is forwarded, with its token estimates
    reservation: Reservation | None  # the key's tokens held until the request is recorded
    transcript: Transcript | None  # for an endpoint that keeps its requests' texts


class Admitter:
    def __init__(
        self,
        limiter: Limiter,
        admissions: AdmissionTable,
        metrics: GatewayMetrics,
        max_held: int,
        clock: Callable[[], float],
        wall: Callable[[], datetime],
    ) -> None:
        self.limiter = limiter
        self.admissions = admissions
        self.metrics = metrics
        self.max_held = max_held
        self.clock = clock
        self.wall = wall

    def check_key(self, ctx: RequestContext) -> None:
        """Before the body is read: whether the key may send anything now (so a key over its
        limits is refused before it uploads). Counts nothing."""
        if ctx.principal is not None:
            refusal = self.limiter.check(ctx.principal, ctx.started, ctx.started_at)
            if refusal is not None:
                raise self._over_limit(ctx, refusal)

    def admit(
        self, ctx: RequestContext, view: EndpointView, body: bytes, media: str | None = None
    ) -> Admitted:
        """The call parsed (400 for a body nested too deeply, or a query that is not UTF-8),
        counted against the key and its estimated tokens reserved until the request is recorded
        (429 when they do not fit). `media`: the type of an image, audio, raw-bytes or multipart
        body (passed on untouched, no prompt tokens; a kept transcript names it, not its bytes)."""
        if ctx.query is None:
            raise APIError(400, "the query string is not valid UTF-8", error_type="validation")
        call = prepare(ctx.method, ctx.path, ctx.query, body, view.model_name, view.task, media is not None)
        reservation = None
        who = ctx.principal
        if who is not None:
            limited = who.tokens_per_minute is not None or who.token_budget is not None
            admitted = self.limiter.admit(who, call.reserve if limited else 0, self.clock(), self.wall())
            if not isinstance(admitted, Reservation):
                raise self._over_limit(ctx, admitted)
            reservation = admitted
        record_text = view.traffic.record_text
        transcript = None
        if record_text is not None:
            kept = body if media is None else f"[{media} body, {len(body)} bytes: not kept]".encode()
            transcript = Transcript(kept, record_text.retention_days)
        return Admitted(call, reservation, transcript)

    async def take_slot(self, view: EndpointView, releases: Releases) -> float:
        """Wait for one of the endpoint's concurrency slots (held until the request ends), or
        429 when its queue is full; returns the seconds spent waiting."""
        traffic = view.traffic
        queued = self.clock()
        try:
            leave = await self.admissions.of(view.namespace, view.name).enter(
                traffic.max_concurrent, traffic.max_queue
            )
        except QueueFull:
            why = f"is at its limit of {traffic.max_concurrent} requests with {traffic.max_queue} waiting"
            raise self._busy(view, "queue_full", why, 1) from None
        releases.push(leave)
        return self.clock() - queued

    def take_hold_place(self, view: EndpointView, releases: Releases) -> Callable[[], None]:
        """A place among the requests the starting endpoint holds (released at the end, or by
        calling the returned function when the hold ends), or 429 when they are too many."""
        try:
            unhold = self.admissions.of(view.namespace, view.name).take_hold(self.max_held)
        except HoldFull:
            why = f"is starting and already holds {self.max_held} requests"
            raise self._busy(view, "hold_full", why, RETRY_AFTER_S) from None
        releases.push(unhold)
        return unhold

    def _over_limit(self, ctx: RequestContext, refusal: Refusal) -> GatewayError:
        self.metrics.refused.labels(ctx.namespace, ctx.endpoint, refusal.reason).inc()
        return GatewayError(
            429,
            f"{refusal.message}: retry in {refusal.retry_after_s} s",
            code="insufficient_quota" if refusal.reason == "budget" else "rate_limit_exceeded",
            error_type="overloaded",
            headers={"retry-after": str(refusal.retry_after_s),
                     f"x-ratelimit-limit-{refusal.reason}": str(refusal.limit),
                     f"x-ratelimit-remaining-{refusal.reason}": str(refusal.remaining)},
        )  # fmt: skip

    def _busy(self, view: EndpointView, reason: str, why: str, retry_after_s: int) -> GatewayError:
        """429 endpoint_busy, counted by reason."""
        self.metrics.refused.labels(view.namespace, view.name, reason).inc()
        return GatewayError(
            429,
            f"endpoint {view.namespace}/{view.name} {why}: retry in a few seconds",
            code="endpoint_busy",
            error_type="overloaded",
            headers={"retry-after": str(retry_after_s)},
        )
