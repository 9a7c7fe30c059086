"""The answer, back to the client chunk by chunk as the replica sends it, metered on the way
(metering.py: token usage; transcript.py: the texts of an endpoint that keeps them). A replica
that fails mid-answer is taken out of rotation: a stream ends with an error event, a JSON body
is cut (it cannot be ended cleanly). A closed client connection closes the upstream one (by
RelayedResponse), which aborts the request in the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response

from modelport.gateway.metering import Call, Meter, error_event
from modelport.gateway.relayed_response import RelayedResponse
from modelport.gateway.routing import Route
from modelport.gateway.stages.forward import HOP_BY_HOP, Forwarded
from modelport.gateway.transcript import Transcript
from modelport.gateway.upstream import BrokenAnswer
from modelport.protocol.errors import APIError

_HOP_BY_HOP_BUT_LENGTH = HOP_BY_HOP - {"content-length"}  # an answer passed on as it is keeps its length

Withdraw = Callable[[Route, str, str, str], None]


@dataclass(frozen=True, slots=True)
class Relayed:
    status: int  # the replica's, or 502 when it failed mid-answer
    prompt_tokens: int  # as the engine reported them (0: it did not)
    completion_tokens: int
    sse: bool  # an event stream (its time per output token is measured)
    relay_s: float  # the gateway's own time handling chunks (waits for the replica excluded)
    units: dict[str, float] | None = None  # work that is not tokens, as the replica reported it


class Relay:
    """One answer being relayed. A stream is consumed as it goes, so what it carried is kept here
    as it passes and read once, when the answer has ended (`relayed`)."""

    __slots__ = ("_clock", "_meter", "_relay_s", "_status", "_transcript", "_withdraw", "call", "forwarded")

    def __init__(
        self,
        forwarded: Forwarded,
        call: Call,
        transcript: Transcript | None,
        clock: Callable[[], float],
        withdraw: Withdraw,
        status: int | None = None,  # what to record when it relays cleanly; default the replica's
    ) -> None:
        self.forwarded = forwarded
        self.call = call
        self._transcript = transcript
        self._clock = clock
        self._withdraw = withdraw
        self._status = forwarded.response.status_code if status is None else status
        self._meter: Meter | None = None  # from the first chunk on
        self._relay_s = 0.0

    async def chunks(self) -> AsyncIterator[bytes]:
        """The answer's body as it arrives, less any usage the gateway asked for itself."""
        upstream = self.forwarded.response
        clock, transcript = self._clock, self._transcript
        sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
        meter = self._meter = Meter(sse, self.call.strip_usage, upstream.headers)
        try:
            async for chunk in upstream.chunks():
                received = clock()
                out = meter.feed(chunk)
                if transcript is not None:
                    transcript.feed(chunk, sse)
                if out:
                    yield out  # resumes once the chunk was handed to the client's socket
                self._relay_s += clock() - received
            tail = meter.finish()
            if tail:
                yield tail
        except BrokenAnswer as exc:
            self._status = 502
            route, view = self.forwarded.route, self.forwarded.view
            self._withdraw(route, view.namespace, view.name, f"failed mid-answer ({exc})")
            if not sse:
                raise  # a JSON body cannot be ended cleanly: the client sees a truncated answer
            err = APIError(
                502, "the replica serving this request failed mid-answer; the answer is incomplete: retry"
            )
            yield error_event(err, self.call.dialect)

    def relayed(self) -> Relayed:
        meter = self._meter
        if meter is None:  # the answer never began to be relayed (the client left first)
            return Relayed(self._status, 0, 0, False, self._relay_s)
        return Relayed(
            self._status, meter.prompt_tokens, meter.completion_tokens, meter.sse, self._relay_s, meter.units
        )


def relayed_response(relay: Relay, on_close: Callable[[], Awaitable[None]]) -> Response:
    """The client's answer: the replica's, passed on (less hop-by-hop headers), or translated
    back to the dialect called. `on_close` runs once however it ends."""
    forwarded = relay.forwarded
    upstream, translation = forwarded.response, forwarded.translation
    if translation is not None:
        return translation.response(upstream, relay.chunks(), on_close)
    drop = HOP_BY_HOP if relay.call.strip_usage else _HOP_BY_HOP_BUT_LENGTH
    headers = {k: v for k, v in upstream.headers.items() if k.lower() not in drop}
    return RelayedResponse(relay.chunks(), upstream.status_code, headers, on_close)
