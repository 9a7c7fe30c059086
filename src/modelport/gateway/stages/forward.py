"""The upstream call: the least busy ready replica gets the request, with its own token as the
Authorization (the caller's key never reaches a replica) and the one client address the gateway
decided. A replica that refused the connection is skipped for the next one (the request never
reached it); one that took the request and dropped the connection answers 502 and is taken out
of rotation, and the request goes nowhere else (it may be what crashed it); no answer within the
first-byte deadline is a 504. Returns when the answer's status and headers have arrived."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers

from modelport.gateway.context import RequestContext
from modelport.gateway.errors import UNAVAILABLE, NotDelivered
from modelport.gateway.metering import Call
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.releases import Releases
from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.gateway.translation import Translation
from modelport.gateway.upstream import Dropped, NoFirstByte, NotAnswered, Upstream, UpstreamResponse
from modelport.protocol.errors import APIError

log = logging.getLogger("modelport.gateway")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",
        "accept-encoding",
    }
)
# the caller's own X-Forwarded-For is not passed on: the replica gets the one address the
# gateway decided (ControlPlaneApp applies --trusted-proxy), never a chain the caller wrote;
# likewise one X-Request-ID, the gateway's (the caller's only when it is well formed)
NOT_FORWARDED = HOP_BY_HOP | {"x-forwarded-for", "forwarded", "x-real-ip", "x-request-id"}


@dataclass(frozen=True, slots=True)
class Ready:
    """An endpoint with a ready replica and a concurrency slot for the request."""

    view: EndpointView
    translation: Translation | None  # what the call becomes for this endpoint's engine
    waited_s: float  # held and queued: not the gateway's work


@dataclass(frozen=True, slots=True)
class Forwarded:
    response: UpstreamResponse  # its status and headers have arrived, its body not yet
    route: Route  # the replica answering
    view: EndpointView  # the endpoint it belongs to
    translation: Translation | None
    first_byte_s: float  # from the request's arrival
    before_s: float  # the gateway's own work before the upstream call (waits excluded)


class Forwarder:
    def __init__(
        self,
        table: RoutingTable,
        client: Upstream,
        metrics: GatewayMetrics,
        on_replica_lost: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self.table = table
        self.client = client
        self.metrics = metrics
        self.on_replica_lost = on_replica_lost
        self.clock = clock

    async def forward(
        self,
        ctx: RequestContext,
        ready: Ready,
        call: Call,
        headers: Headers,
        waited_s: float,
        releases: Releases,
        can_fall_back: bool = False,
    ) -> Forwarded:
        """Send to the least busy replica, the next one if it does not answer, and so on.
        `headers`: the caller's; `waited_s`: the request's waits so far (upload, hold, queue).
        The replica's in-flight count is released with `releases` (at once when it never kept
        the request). `can_fall_back`: a replica's 502/503/504 is refused (NotDelivered), so the
        fallback endpoint may take the request instead."""
        view, translation = ready.view, ready.translation
        path, body = (translation.path, translation.body) if translation else (call.path, call.body)
        sent = [(k, v) for k, v in headers.items() if k.lower() not in NOT_FORWARDED]
        sent += [("accept-encoding", "identity"), ("x-request-id", ctx.request_id)]
        if ctx.client is not None:
            sent.append(("x-forwarded-for", ctx.client))
        tried: set[str] = set()
        before_s = 0.0
        while (route := self.table.pick(view, frozenset(tried))) is not None:
            tried.add(route.replica_id)
            release = self.table.acquire(route.replica_id)
            releases.push(release)
            if len(tried) == 1:  # the first attempt: all before it was the gateway's work
                before_s = self.clock() - ctx.started - waited_s
            try:
                # the replica's own token; the caller's Authorization never reaches it (NOT_FORWARDED)
                auth = [("authorization", f"Bearer {route.token}")] if route.token else []
                response = await self.client.send(
                    call.method, route.address + path, call.query, body, [*sent, *auth]
                )
            except NotAnswered as exc:
                release()
                log.warning(
                    "replica %s of %s/%s did not answer (%s); trying another",
                    route.replica_id[:8],
                    view.namespace,
                    view.name,
                    exc,
                )
                continue
            except Dropped as exc:
                release()  # not charged: the replica failed, not the caller
                self.withdraw(
                    route, view.namespace, view.name, f"closed the connection before answering ({exc})"
                )
                raise NotDelivered(
                    502,
                    "the replica closed the connection before answering; the request was not sent "
                    "to another replica, as it may be what failed: retry if it is safe to",
                    code="upstream_dropped",
                ) from None
            except NoFirstByte as exc:
                release()  # the cancelled call closed the connection: the engine aborts the request
                raise APIError(  # the replica had the prompt: charged as such
                    504,
                    f"the replica did not begin answering in time ({exc}): retry later, or with a "
                    "shorter request",
                    code="upstream_timeout",
                ) from None
            if can_fall_back and response.status_code in UNAVAILABLE:
                await response.close()
                release()
                raise NotDelivered(
                    response.status_code, f"{view.namespace}/{view.name} answered {response.status_code}"
                )
            return Forwarded(response, route, view, translation, self.clock() - ctx.started, before_s)
        raise NotDelivered(
            503,
            f"no replica of {view.namespace}/{view.name} answered: retry in a few seconds",
            code="no_ready_replica",
        )

    def withdraw(self, route: Route, namespace: str, name: str, why: str) -> None:
        """Take a replica out of rotation until the control loop has looked at it again."""
        log.warning("replica %s of %s/%s %s; out of rotation", route.replica_id[:8], namespace, name, why)
        self.metrics.replica_lost.labels(namespace, name).inc()
        self.table.withdraw(route.replica_id)
        self.on_replica_lost(route.replica_id)
