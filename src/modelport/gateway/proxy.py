"""The endpoint URL: `/endpoints/{ns}/{name}/...`, an authenticated, metered reverse proxy.

One request is one pass down `Gateway.handle`, stage by stage (gateway/stages/): authenticate
(who, which route) → admit (the key's limits, its tokens reserved) → route (overflow, fallback)
→ hold while the endpoint starts (a stream gets SSE keep-alives meanwhile) → the endpoint's
concurrency slot → translate (translation.py) → forward to the least busy ready replica →
relay the answer chunk by chunk while metering it → record. Each stage returns a value or raises
the API error, in the dialect of the route called; what the request holds is released once, by
`Releases`, and its one usage record is built from an immutable `Outcome`. A client that leaves
while held, queued or waiting for the first byte cancels all of it (`ClientWatch`). The client's
key never reaches a replica, and no body text is logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelport.auth.api_keys import KeyRing
from modelport.gateway.access import DEFAULT_PRIVATE_NETWORKS, parse_networks
from modelport.gateway.admission import AdmissionTable
from modelport.gateway.client_watch import ClientWatch
from modelport.gateway.context import RequestContext, arrive
from modelport.gateway.errors import CLIENT_CLOSED, ClientGone, NotDelivered, error_answer
from modelport.gateway.limits import Limiter
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.paths import check_forwarded
from modelport.gateway.payloads import BodyLimits, read_body
from modelport.gateway.relayed_response import RelayedResponse
from modelport.gateway.releases import Releases
from modelport.gateway.routing import IPNetwork, RoutingTable
from modelport.gateway.stages.admit import Admitted, Admitter
from modelport.gateway.stages.authenticate import authenticate
from modelport.gateway.stages.forward import Forwarded, Forwarder
from modelport.gateway.stages.hold import HeldStream, Holder, WakeUp
from modelport.gateway.stages.record import Outcome, Recorder
from modelport.gateway.stages.relay import Relay, relayed_response
from modelport.gateway.stages.route import Target, choose, falls_back
from modelport.gateway.upstream import Upstream
from modelport.observe.usage_log import UsageLog
from modelport.protocol.errors import APIError

DEFAULT_HOLD_S = 120.0
DEFAULT_MAX_HELD = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class GatewaySettings:
    hold_s: float = DEFAULT_HOLD_S
    keepalive_s: float = 5.0  # SSE comment interval for streams held while an endpoint starts
    private_networks: tuple[IPNetwork, ...] = parse_networks(DEFAULT_PRIVATE_NETWORKS)
    max_held: int = DEFAULT_MAX_HELD  # requests one endpoint may hold while it starts; more get 429
    # request bodies per content type (payloads.py); read at start-up, from envs.py
    body_limits: BodyLimits = field(default_factory=BodyLimits.from_env)


class Gateway:
    def __init__(
        self,
        table: RoutingTable,
        keys: KeyRing,
        client: Upstream,
        wake_up: WakeUp,
        usage: UsageLog,
        metrics: GatewayMetrics,
        settings: GatewaySettings | None = None,
        on_replica_lost: Callable[[str], None] = lambda _replica_id: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.table = table
        self.keys = keys
        self.wake_up = wake_up
        self.metrics = metrics
        self.settings = settings = settings or GatewaySettings()
        self.clock = clock
        self.wall = wall
        self.limiter = Limiter()
        self.admissions = AdmissionTable()
        self.admitter = Admitter(self.limiter, self.admissions, metrics, settings.max_held, clock, wall)
        self.forwarder = Forwarder(table, client, metrics, on_replica_lost, clock)
        self.holder = Holder(
            table, wake_up, self.admissions, self.admitter, self.forwarder, clock, settings.keepalive_s
        )
        self.recorder = Recorder(self.limiter, metrics, usage, clock, wall)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry for /endpoints/{namespace}/{name}[/{path}]."""
        parts = scope["path"].split("/", 4)  # "", "endpoints", namespace, name, rest
        if len(parts) < 4 or not parts[2] or not parts[3]:
            err = APIError(404, "endpoint URLs look like /endpoints/{namespace}/{name}/...", code="not_found")
            await error_answer(err, scope["path"])(scope, receive, send)
            return
        rest = "/" + parts[4] if len(parts) == 5 else "/"
        response = await self.handle(Request(scope, receive), parts[2], parts[3], rest)
        await response(scope, receive, send)

    async def handle(self, request: Request, namespace: str, name: str, path: str) -> Response:
        """One request, top to bottom. Every way out releases what it holds and records it once:
        a refusal here, a client that left or a bug below, or the answer's end (`_relay_ended`)."""
        ctx = arrive(request, namespace, name, path, self.clock, self.wall, self.settings.hold_s)
        releases = Releases()  # what the request holds until it ends
        admitted: Admitted | None = None
        target: Target | None = None
        answer: Forwarded | HeldStream | None = None
        reached = False  # a replica took the request, so may have worked on it: it is charged
        try:
            view = self.table.get(namespace, name)
            ctx = authenticate(ctx, view, request.headers.get("authorization"), self.keys,
                               self.settings.private_networks)  # fmt: skip
            assert view is not None  # authenticate refuses unknown endpoints
            check_forwarded(ctx.method, path)
            self.admitter.check_key(ctx)
            upload_started = self.clock()
            body = await read_body(request, path, self.settings.body_limits)  # 415 / 413 as it comes
            waited_s = self.clock() - upload_started  # the client's upload, not the gateway's work
            media = (body.content_type or body.kind.value) if body.kind.media else None
            admitted = self.admitter.admit(ctx, view, body.data, media)
            outstanding = self.admissions.of(namespace, name).outstanding
            async with ClientWatch(request):
                for target in choose(view, self.table.endpoints, outstanding):  # then its fallback
                    if target.policy is not None:
                        self.metrics.policy.labels(namespace, name, target.policy, target.view.name).inc()
                    reached = False
                    try:
                        ready = await self.holder.ready(ctx, target, admitted, releases)
                        if isinstance(ready, HeldStream):
                            answer = ready
                            break
                        waited_s += ready.waited_s
                        reached = True
                        answer = await self.forwarder.forward(
                            ctx,
                            ready,
                            admitted.call,
                            request.headers,
                            waited_s,
                            releases,
                            target.can_fall_back,
                        )
                        break
                    except APIError as err:
                        reached = reached and not isinstance(err, NotDelivered)
                        if not (target.can_fall_back and falls_back(err)):
                            raise
                        releases.release_all()  # this endpoint's slot and replica: the fallback's turn
            assert answer is not None and target is not None
            response = self._respond(ctx, target, admitted, answer, releases, request.headers, waited_s)
        except APIError as err:
            response = self._refused(err, Outcome(ctx, err.status, target, admitted, reached), releases)
        except (ClientGone, ClientDisconnect):  # left while uploading, held, queued or waiting
            forwarded = answer if isinstance(answer, Forwarded) else None  # (or just as it came)
            await self._closed(Outcome(ctx, CLIENT_CLOSED, target, admitted, reached, forwarded), releases)
            return Response(status_code=CLIENT_CLOSED)  # nobody reads it: the connection is gone
        except BaseException:  # a bug or a store error: still release, settle and record it
            forwarded = answer if isinstance(answer, Forwarded) else None
            await self._closed(Outcome(ctx, 500, target, admitted, reached, forwarded), releases)
            raise
        response.headers["x-request-id"] = ctx.request_id
        return response

    # -- the end of every admitted request: release what it holds, then record it, once -----
    def _respond(
        self,
        ctx: RequestContext,
        target: Target,
        admitted: Admitted,
        answer: Forwarded | HeldStream,
        releases: Releases,
        headers: Headers,
        waited_s: float,
    ) -> Response:
        """The client's answer; when it has ended, however it ended, the request is recorded."""
        if isinstance(answer, HeldStream):
            body = self.holder.body(answer, ctx, admitted, releases, headers, waited_s)
            on_close = partial(self._held_ended, ctx, target, admitted, answer, releases)
            return RelayedResponse(
                body, 200, {"content-type": "text/event-stream", "cache-control": "no-cache"}, on_close
            )
        relay = Relay(answer, admitted.call, admitted.transcript, self.clock, self.forwarder.withdraw)
        return relayed_response(relay, partial(self._relay_ended, ctx, target, admitted, relay, releases))

    async def _relay_ended(
        self, ctx: RequestContext, target: Target, admitted: Admitted, relay: Relay, releases: Releases
    ) -> None:
        await relay.forwarded.response.close()
        relayed = relay.relayed()
        self._end(Outcome(ctx, relayed.status, target, admitted, True, relay.forwarded, relayed), releases)

    async def _held_ended(
        self, ctx: RequestContext, target: Target, admitted: Admitted, held: HeldStream, releases: Releases
    ) -> None:
        end = held.ended()
        outcome = Outcome(ctx, end.status, target, admitted, end.reached_replica, end.forwarded, end.relayed)
        await self._closed(outcome, releases)

    def _refused(self, err: APIError, outcome: Outcome, releases: Releases) -> Response:
        if err.status in (401, 403, 404):  # not recorded per endpoint: any name may be probed
            releases.release_all()
            self.recorder.refused_as_unknown(outcome)
        else:
            self._end(outcome, releases)
        return error_answer(err, outcome.ctx.path)

    async def _closed(self, outcome: Outcome, releases: Releases) -> None:
        if outcome.forwarded is not None:
            await outcome.forwarded.response.close()
        self._end(outcome, releases)

    def _end(self, outcome: Outcome, releases: Releases) -> None:
        releases.release_all()
        self.recorder.record(outcome)
