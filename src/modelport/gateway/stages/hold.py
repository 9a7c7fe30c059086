"""A request's target made ready (`Holder.ready`): an endpoint with no ready replica refuses at
once when it is paused or failed, hands the request to its fallback when it has one (waking
itself), and otherwise holds it (up to its hold time, waking a scaled-to-zero endpoint first)
while it starts; a streaming request is answered at once instead and kept alive with SSE
comments meanwhile (`HeldStream`). Then the endpoint's concurrency slot (admit.py) and the call
translated for its engine (translation.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.datastructures import Headers

from modelport.gateway.admission import AdmissionTable
from modelport.gateway.context import RequestContext
from modelport.gateway.errors import NotDelivered
from modelport.gateway.metering import error_event
from modelport.gateway.releases import Releases
from modelport.gateway.routing import EndpointView, RoutingTable
from modelport.gateway.stages.admit import Admitted, Admitter
from modelport.gateway.stages.forward import Forwarded, Forwarder, Ready
from modelport.gateway.stages.relay import Relay, Relayed
from modelport.gateway.stages.route import Target
from modelport.gateway.translation import translation_for
from modelport.protocol.errors import APIError, error_message
from modelport.spec.endpoint import EndpointState, Intent

WakeUp = Callable[[str, str], Awaitable[None]]
WAITING = b": waiting for a replica\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def refuse_if_down(view: EndpointView) -> None:
    """Paused and failed endpoints answer at once: waiting would not bring them back."""
    ref = f"{view.namespace}/{view.name}"
    if view.intent == Intent.PAUSED:
        raise APIError(
            503,
            f"endpoint {ref} is paused: resume it (modelport endpoints resume {view.name}) to serve",
            code="endpoint_paused",
            error_type="paused",
        )
    if view.state == EndpointState.FAILED and view.intent == Intent.ACTIVE:
        # the reason (a replica's last log lines) is for the endpoint's admins, on /v2 only
        raise APIError(
            503,
            f"endpoint {ref} failed to start: its owner can see why with `modelport endpoints "
            f"describe {view.name}` (GET /v2/endpoint/{ref})",
            code="endpoint_failed",
        )


async def hold(
    view: EndpointView, hold_s: float, table: RoutingTable, wake_up: WakeUp, unhold: Callable[[], None]
) -> EndpointView:
    """The endpoint's view once it has a ready replica (waiting at most `hold_s`, waking a
    scaled-to-zero endpoint first); then (or on any error) `unhold` gives the hold place back."""
    try:
        return await _wait_ready(view, hold_s, table, wake_up)
    finally:
        unhold()


async def _wait_ready(
    view: EndpointView, hold_s: float, table: RoutingTable, wake_up: WakeUp
) -> EndpointView:
    ref = f"{view.namespace}/{view.name}"
    woke = view.intent == Intent.SCALED_TO_ZERO
    if woke:
        await wake_up(view.namespace, view.name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold_s
    while True:
        refuse_if_down(view)
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await table.next_publish(remaining)
        current = table.get(view.namespace, view.name)
        if current is None or current.intent == Intent.DELETING:
            raise APIError(404, f"no endpoint {ref}", code="endpoint_not_found")
        view = current
        if view.routes:
            return view
    raise APIError(
        503,
        f"endpoint {ref} is starting ({view.state}) and had no ready replica within {hold_s:g} s: "
        "retry in a few seconds, or send a longer X-Scale-Up-Timeout",
        code="scaled_to_zero" if woke else "no_ready_replica",
        error_type="scaled_to_zero" if woke else None,
    )


@dataclass(frozen=True, slots=True)
class HeldEnd:
    """How a held stream ended: what the pipeline records."""

    status: int
    reached_replica: bool
    forwarded: Forwarded | None
    relayed: Relayed | None


class HeldStream:
    """A stream held while its endpoint starts, and how far it got: its body (a generator, which
    cannot return a value) notes each step here as it goes, and `ended()` is read once the
    stream has closed."""

    __slots__ = ("_forwarded", "_reached_replica", "_relay", "_status", "unhold", "view")

    def __init__(self, view: EndpointView, unhold: Callable[[], None]) -> None:
        self.view = view  # the endpoint it waits for
        self.unhold = unhold  # gives its hold place back
        self._status = 200  # answered at once: a later error is an event in the stream
        self._reached_replica = False
        self._forwarded: Forwarded | None = None
        self._relay: Relay | None = None

    def sending(self) -> None:
        """The request is about to reach a replica (it may work on it, even if the client leaves)."""
        self._reached_replica = True

    def failed(self, err: APIError) -> None:
        self._status = err.status
        if isinstance(err, NotDelivered):
            self._reached_replica = False

    def forwarded(self, forwarded: Forwarded) -> None:
        self._forwarded = forwarded
        if forwarded.response.status_code >= 400:
            self._status = forwarded.response.status_code

    def relaying(self, relay: Relay) -> None:
        self._relay = relay

    def ended(self) -> HeldEnd:
        relayed = self._relay.relayed() if self._relay is not None else None
        status = relayed.status if relayed is not None else self._status
        return HeldEnd(status, self._reached_replica, self._forwarded, relayed)


class Holder:
    """Makes a request's target ready: held while the endpoint starts (a stream is answered at
    once instead: a `HeldStream`), then one of its concurrency slots, and the call translated
    for its engine."""

    def __init__(
        self,
        table: RoutingTable,
        wake_up: WakeUp,
        admissions: AdmissionTable,
        admitter: Admitter,
        forwarder: Forwarder,
        clock: Callable[[], float],
        keepalive_s: float,
    ) -> None:
        self.table = table
        self.wake_up = wake_up
        self.admissions = admissions
        self.admitter = admitter
        self.forwarder = forwarder
        self.clock = clock
        self.keepalive_s = keepalive_s  # SSE comment interval of a held stream

    async def ready(
        self, ctx: RequestContext, target: Target, admitted: Admitted, releases: Releases
    ) -> Ready | HeldStream:
        view = target.view
        self.admissions.of(view.namespace, view.name).arrivals += 1
        if view.routes:
            return await self.enter(view, admitted, releases, 0.0)
        refuse_if_down(view)
        if target.can_fall_back:  # serve from the fallback now rather than hold; wake this one
            if view.intent == Intent.SCALED_TO_ZERO:
                await self.wake_up(view.namespace, view.name)
            raise APIError(503, f"{view.namespace}/{view.name} has no ready replica", code="no_ready_replica")
        unhold = self.admitter.take_hold_place(view, releases)
        if admitted.call.stream:
            return HeldStream(view, unhold)
        held_since = self.clock()
        view = await hold(view, ctx.hold_s, self.table, self.wake_up, unhold)
        return await self.enter(view, admitted, releases, self.clock() - held_since)

    async def enter(self, view: EndpointView, admitted: Admitted, releases: Releases, held_s: float) -> Ready:
        """The endpoint's concurrency slot, and the call translated for its engine."""
        queued_s = await self.admitter.take_slot(view, releases)
        return Ready(view, translation_for(admitted.call, view), held_s + queued_s)

    async def body(
        self,
        held: HeldStream,
        ctx: RequestContext,
        admitted: Admitted,
        releases: Releases,
        headers: Headers,
        waited_s: float,
    ) -> AsyncIterator[bytes]:
        """A held stream: SSE comments while the endpoint starts; then the replica's stream
        relayed, or an error event."""
        yield WAITING
        held_since = self.clock()
        waiting = asyncio.ensure_future(hold(held.view, ctx.hold_s, self.table, self.wake_up, held.unhold))
        try:
            while not (await asyncio.wait({waiting}, timeout=self.keepalive_s))[0]:
                yield KEEP_ALIVE
            ready = await self.enter(waiting.result(), admitted, releases, self.clock() - held_since)
            held.sending()
            forwarded = await self.forwarder.forward(
                ctx, ready, admitted.call, headers, waited_s + ready.waited_s, releases
            )
        except APIError as err:
            held.failed(err)
            yield error_event(err, ctx.dialect)
            return
        finally:
            waiting.cancel()
        held.forwarded(forwarded)
        upstream = forwarded.response
        if upstream.status_code >= 400:
            raw = await upstream.read()
            yield error_event(
                APIError(upstream.status_code, error_message(raw, upstream.status_code)), ctx.dialect
            )
            return
        relay = Relay(forwarded, admitted.call, admitted.transcript, self.clock, self.forwarder.withdraw, 200)
        held.relaying(relay)
        chunks = relay.chunks()
        if forwarded.translation is not None:
            chunks = forwarded.translation.events(chunks)
        async for chunk in chunks:
            yield chunk
