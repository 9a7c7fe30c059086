"""The endpoint URL: `/endpoints/{ns}/{name}/...`, an authenticated, metered reverse proxy.

Per request: access (type, key, scope, network) → the key's limits → traffic policy (overflow
to another endpoint) → hold while the endpoint starts (waking a scaled-to-zero one; streams get
SSE keep-alives meanwhile) → the endpoint's concurrency slot → the least busy ready replica →
relay the answer chunk by chunk while metering its usage → one usage record. A replica that
refuses the connection or drops it before answering is skipped for the next one (nothing has
reached the client yet); one that fails mid-answer ends the stream with an error event and is
taken out of rotation. A closed client connection closes the upstream one, which aborts the
request in the engine. Errors use the dialect of the route called (OpenAI on /v1, TGI/TEI
elsewhere). The client's key never reaches a replica, and no body text is logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelport.auth.api_keys import KeyRing, Principal
from modelport.gateway.access import DEFAULT_PRIVATE_NETWORKS, authorize, parse_networks
from modelport.gateway.admission import AdmissionTable, HoldFull, QueueFull
from modelport.gateway.limits import Limiter, Reservation
from modelport.gateway.metering import Call, Meter, error_event, prepare
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.paths import check_forwarded
from modelport.gateway.relay import RelayedResponse
from modelport.gateway.routing import EndpointView, IPNetwork, Route, RoutingTable
from modelport.gateway.transcript import Transcript
from modelport.gateway.translation import Translation, translation_for
from modelport.gateway.upstream import (
    BrokenAnswer,
    Dropped,
    NoFirstByte,
    NotAnswered,
    Upstream,
    UpstreamResponse,
)
from modelport.observe.usage_log import UsageLog
from modelport.protocol.errors import APIError, error_message
from modelport.protocol.http import error_response
from modelport.spec.endpoint import EndpointState, Intent
from modelport.store.records import UsageRecord

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
# gateway decided (ControlPlaneApp applies --trusted-proxy), never a chain the caller wrote
NOT_FORWARDED = HOP_BY_HOP | {"x-forwarded-for", "forwarded", "x-real-ip"}
RETRY_AFTER_S = 5
MAX_HOLD_S = 600.0  # the longest a request may ask to be held while an endpoint starts
DEFAULT_HOLD_S = 120.0
DEFAULT_MAX_HELD = 1000
CLIENT_CLOSED = 499  # recorded (never sent) for a client that left before its answer began
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_UNAVAILABLE = frozenset({502, 503, 504})
# a replica took these requests and then failed them: replaying one on another endpoint could
# crash or hang that one too
_NOT_REPLAYED = frozenset({"upstream_dropped", "upstream_timeout"})

WakeUp = Callable[[str, str], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class GatewaySettings:
    hold_s: float = DEFAULT_HOLD_S
    keepalive_s: float = 5.0  # SSE comment interval for streams held while an endpoint starts
    private_networks: tuple[IPNetwork, ...] = parse_networks(DEFAULT_PRIVATE_NETWORKS)
    max_held: int = DEFAULT_MAX_HELD  # requests one endpoint may hold while it starts; more get 429


class ClientGone(Exception):
    """The client closed its connection before the answer began."""


@dataclass
class GatewayError(APIError):
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Exchange:
    """One request's bookkeeping, from arrival to its usage record."""

    request_id: str
    namespace: str
    endpoint: str
    path: str
    started: float
    started_at: datetime
    principal: Principal | None = None
    served_by: str = ""
    policy: str | None = None
    route: Route | None = None
    status: int = 0
    first_byte_s: float | None = None
    upstream: UpstreamResponse | None = None
    meter: Meter | None = None
    translation: Translation | None = None
    client: str | None = None  # the caller's address
    model: str | None = None  # of the endpoint that served it
    revision: str | None = None
    transcript: Transcript | None = None  # only for an endpoint that opted in to keeping texts
    releases: list[Callable[[], None]] = field(default_factory=list)
    reservation: Reservation | None = None  # the key's tokens held from admission to `_finish`
    call: Call | None = None  # its prompt estimate is charged when the engine never reports one
    delivered: bool = False  # a replica took the request (it may have worked on it)
    finished: bool = False
    waited_s: float = 0.0  # the body's upload, holds for a replica or a slot: not the gateway's work
    before_s: float = 0.0  # the gateway's own processing before the upstream call
    relay_s: float = 0.0  # ... and while relaying chunks (waits for a replica or a slot excluded)


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
        self.client = client
        self.wake_up = wake_up
        self.usage = usage
        self.metrics = metrics
        self.settings = settings or GatewaySettings()
        self.on_replica_lost = on_replica_lost
        self.clock = clock
        self.wall = wall
        self.limiter = Limiter()
        self.admissions = AdmissionTable()

    # -- the request -------------------------------------------------------------------------
    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry for /endpoints/{namespace}/{name}[/{path}]."""
        parts = scope["path"].split("/", 4)  # "", "endpoints", namespace, name, rest
        if len(parts) < 4 or not parts[2] or not parts[3]:
            err = APIError(404, "endpoint URLs look like /endpoints/{namespace}/{name}/...", code="not_found")
            await error_response(scope["path"], err)(scope, receive, send)
            return
        rest = "/" + parts[4] if len(parts) == 5 else "/"
        response = await self.handle(Request(scope, receive), parts[2], parts[3], rest)
        await response(scope, receive, send)

    async def handle(self, request: Request, namespace: str, name: str, path: str) -> Response:
        given_id = request.headers.get("x-request-id")
        ex = Exchange(
            request_id=given_id if given_id and _REQUEST_ID.match(given_id) else uuid.uuid4().hex,
            namespace=namespace,
            endpoint=name,
            path=path,
            started=self.clock(),
            started_at=self.wall(),
            served_by=name,
            client=request.client.host if request.client else None,
        )
        try:
            view = self.table.get(namespace, name)
            ex.principal = authorize(
                view,
                namespace,
                name,
                request.headers.get("authorization"),
                request.client.host if request.client else None,
                self.keys,
                self.settings.private_networks,
                ex.started_at,
            )
            assert view is not None  # authorize refuses unknown endpoints
            check_forwarded(request.method, path)
            self._admit(ex)
            upload_started = self.clock()
            body = await request.body()
            ex.waited_s += self.clock() - upload_started  # the client's upload, not the gateway's work
            call = prepare(request.method, path, request.url.query, body, view.model_name, view.task)
            self._admit(ex, call)  # reserves the call's estimated tokens until `_finish` settles
            if view.traffic.record_text is not None:
                ex.transcript = Transcript(body, view.traffic.record_text.retention_days)
            response = await self._until_client_leaves(request, self._serve(view, ex, call, request))
        except APIError as err:
            response = self._refuse(err, ex)
        except (ClientGone, ClientDisconnect):  # left while held, queued, waiting or uploading
            ex.status = CLIENT_CLOSED
            await self._close(ex)
            return Response(status_code=CLIENT_CLOSED)  # nobody reads it: the connection is gone
        except BaseException:  # a bug or a store error: still release, settle and record it
            ex.status = ex.status or 500
            await self._close(ex)
            raise
        response.headers["x-request-id"] = ex.request_id
        return response

    def _admit(self, ex: Exchange, call: Call | None = None) -> None:
        """The key's limits. Without `call` (before the body is read) only whether the key may
        send anything now; with it, the request is counted and its estimated tokens reserved."""
        if call is not None:
            ex.call = call
        if ex.principal is None:
            return
        if call is None:
            refusal = self.limiter.check(ex.principal, ex.started, ex.started_at)
        else:
            who = ex.principal
            limited = who.tokens_per_minute is not None or who.token_budget is not None
            admitted = self.limiter.admit(who, call.reserve if limited else 0, self.clock(), self.wall())
            if isinstance(admitted, Reservation):
                ex.reservation = admitted
                return
            refusal = admitted
        if refusal is not None:
            self.metrics.refused.labels(ex.namespace, ex.endpoint, refusal.reason).inc()
            raise GatewayError(
                429,
                f"{refusal.message}: retry in {refusal.retry_after_s} s",
                code="insufficient_quota" if refusal.reason == "budget" else "rate_limit_exceeded",
                error_type="overloaded",
                headers={"retry-after": str(refusal.retry_after_s),
                         f"x-ratelimit-limit-{refusal.reason}": str(refusal.limit),
                         f"x-ratelimit-remaining-{refusal.reason}": str(refusal.remaining)},
            )  # fmt: skip

    @staticmethod
    async def _until_client_leaves(request: Request, work: Awaitable[Response]) -> Response:
        """`work` (hold, queue, replica's first byte), cancelled if the client disconnects first:
        its slots are released and the upstream connection closed, which aborts the engine's
        work. Once the answer begins, the relay notices a client that leaves. One watcher task
        cancels this one (cheaper than running `work` as a task of its own and waiting on both)."""
        me = asyncio.current_task()
        assert me is not None
        left = False

        async def watch() -> None:
            nonlocal left
            await _disconnected(request)
            left = True
            me.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            response = await work
        except asyncio.CancelledError:
            if not left:
                raise  # cancelled from outside (shutdown): not the client's doing
            me.uncancel()
            raise ClientGone from None
        finally:
            watcher.cancel()  # before the response listens for the disconnect itself
        if left:  # the client left as `work` was returning: its cancel came too late
            me.uncancel()
            raise ClientGone
        return response

    def _refuse(self, err: APIError, ex: Exchange) -> Response:
        headers = dict(err.headers) if isinstance(err, GatewayError) else {}
        if err.status == 503:
            retryable = err.code not in ("endpoint_paused", "endpoint_failed")
            headers["x-should-retry"] = "true" if retryable else "false"
            if retryable:
                headers["retry-after"] = str(RETRY_AFTER_S)
        ex.status = err.status
        if err.status in (401, 403, 404):  # not recorded per endpoint: any name may be probed
            self.metrics.refused.labels("-", "-", str(err.status)).inc()
            if ex.reservation is not None:  # admitted, then the endpoint went away: nothing used
                self.limiter.settle(ex.reservation, 0, self.clock(), self.wall())
        else:
            self._finish(ex)
        return error_response(ex.path, err, headers)

    # -- policies and holding ----------------------------------------------------------------
    async def _serve(self, view: EndpointView, ex: Exchange, call: Call, request: Request) -> Response:
        target = self._overflow_target(view)
        if target is not None:
            self._rerouted(ex, view, target, "overflow")
            return await self._serve_on(target, ex, call, request, fallback=None)
        fallback = self._usable(view.traffic.fallback, view)
        try:
            return await self._serve_on(view, ex, call, request, fallback=fallback)
        except APIError as err:
            if fallback is None or err.status not in _UNAVAILABLE or err.code in _NOT_REPLAYED:
                raise
            self._rerouted(ex, view, fallback, "fallback")
            return await self._serve_on(fallback, ex, call, request, fallback=None)

    def _usable(self, name: str | None, origin: EndpointView) -> EndpointView | None:
        if name is None:
            return None
        view = self.table.get(origin.namespace, name)
        if view is None or view.intent in (Intent.PAUSED, Intent.DELETING):
            return None
        return view

    def _overflow_target(self, view: EndpointView) -> EndpointView | None:
        overflow = view.traffic.overflow
        if overflow is None:
            return None
        if self.admissions.of(view.namespace, view.name).outstanding <= overflow.queue_above:
            return None
        return self._usable(overflow.endpoint, view)

    def _rerouted(self, ex: Exchange, origin: EndpointView, target: EndpointView, policy: str) -> None:
        ex.served_by, ex.policy = target.name, policy
        self.metrics.policy.labels(origin.namespace, origin.name, policy, target.name).inc()

    async def _serve_on(
        self, view: EndpointView, ex: Exchange, call: Call, request: Request, fallback: EndpointView | None
    ) -> Response:
        self.admissions.of(view.namespace, view.name).arrivals += 1
        if not view.routes:
            _refuse_if_down(view)
            if fallback is not None:  # serve from the fallback now rather than hold; wake this one
                if view.intent == Intent.SCALED_TO_ZERO:
                    await self.wake_up(view.namespace, view.name)
                raise APIError(
                    503, f"{view.namespace}/{view.name} has no ready replica", code="no_ready_replica"
                )
            hold_s = _hold_seconds(request.headers.get("x-scale-up-timeout"), self.settings.hold_s)
            unhold = self._take_hold_place(view)
            ex.releases.append(unhold)  # also when a held stream's body never starts
            if call.stream:
                return self._held_stream(view, ex, call, request, hold_s, unhold)
            hold_started = self.clock()
            view = await self._hold(view, hold_s, unhold)
            ex.waited_s += self.clock() - hold_started
        upstream = await self._connect(view, ex, call, request, fallback is not None)
        return self._relay(ex, call, upstream)

    def _take_hold_place(self, view: EndpointView) -> Callable[[], None]:
        try:
            return self.admissions.of(view.namespace, view.name).take_hold(self.settings.max_held)
        except HoldFull:
            raise self._busy(
                view, "hold_full", f"is starting and already holds {self.settings.max_held} requests",
                RETRY_AFTER_S,
            ) from None  # fmt: skip

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

    async def _hold(self, view: EndpointView, hold_s: float, unhold: Callable[[], None]) -> EndpointView:
        """Wait (up to hold_s) for a ready replica, waking a scaled-to-zero endpoint first."""
        try:
            return await self._wait_ready(view, hold_s)
        finally:
            unhold()

    async def _wait_ready(self, view: EndpointView, hold_s: float) -> EndpointView:
        ref = f"{view.namespace}/{view.name}"
        woke = view.intent == Intent.SCALED_TO_ZERO
        if woke:
            await self.wake_up(view.namespace, view.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold_s
        while True:
            _refuse_if_down(view)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self.table.next_publish(remaining)
            current = self.table.get(view.namespace, view.name)
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

    def _held_stream(
        self,
        view: EndpointView,
        ex: Exchange,
        call: Call,
        request: Request,
        hold_s: float,
        unhold: Callable[[], None],
    ) -> Response:
        """Answer a streaming request at once and keep it alive with SSE comments while the
        endpoint starts; then relay the stream, or end it with an error event."""

        async def body() -> AsyncIterator[bytes]:
            yield b": waiting for a replica\n\n"
            hold = asyncio.ensure_future(self._hold(view, hold_s, unhold))
            try:
                while not (await asyncio.wait({hold}, timeout=self.settings.keepalive_s))[0]:
                    yield b": keep-alive\n\n"
                upstream = await self._connect(hold.result(), ex, call, request, can_fall_back=False)
            except APIError as err:
                ex.status = err.status
                yield error_event(err, call.dialect)
                return
            finally:
                hold.cancel()
            if upstream.status_code >= 400:
                ex.status = upstream.status_code
                raw = await upstream.read()
                yield error_event(
                    APIError(upstream.status_code, error_message(raw, upstream.status_code)), call.dialect
                )
                return
            chunks = self._relay_body(ex, call, upstream)
            if ex.translation is not None:
                chunks = ex.translation.events(chunks)
            async for chunk in chunks:
                yield chunk

        ex.status = 200
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        return RelayedResponse(body(), 200, headers, lambda: self._close(ex))

    # -- forwarding --------------------------------------------------------------------------
    async def _connect(
        self, view: EndpointView, ex: Exchange, call: Call, request: Request, can_fall_back: bool
    ) -> UpstreamResponse:
        """Take the endpoint's concurrency slot and send the request to a replica; the answer's
        status and headers have arrived when this returns. The slot and the replica's in-flight
        count are released by `_finish`."""
        traffic = view.traffic
        admission = self.admissions.of(view.namespace, view.name)
        try:
            queued = self.clock()
            leave = await admission.enter(traffic.max_concurrent, traffic.max_queue)
            ex.waited_s += self.clock() - queued
        except QueueFull:
            why = f"is at its limit of {traffic.max_concurrent} requests with {traffic.max_queue} waiting"
            raise self._busy(view, "queue_full", why, 1) from None
        try:
            translation = translation_for(call, view)
            response, route, release = await self._send(view, ex, call, request, translation, can_fall_back)
        except BaseException:
            leave()
            raise
        ex.releases += [leave, release]
        ex.route, ex.upstream, ex.translation = route, response, translation
        ex.model, ex.revision = view.model, view.revision
        ex.first_byte_s = self.clock() - ex.started
        return response

    async def _send(
        self,
        view: EndpointView,
        ex: Exchange,
        call: Call,
        request: Request,
        translation: Translation | None,
        can_fall_back: bool,
    ) -> tuple[UpstreamResponse, Route, Callable[[], None]]:
        """Send to the least busy replica, the next one if it does not answer, and so on."""
        path, body = (translation.path, translation.body) if translation else (call.path, call.body)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        headers += [("accept-encoding", "identity"), ("x-request-id", ex.request_id)]
        if request.client:
            headers.append(("x-forwarded-for", request.client.host))
        tried: set[str] = set()
        while (route := self.table.pick(view, frozenset(tried))) is not None:
            tried.add(route.replica_id)
            release = self.table.acquire(route.replica_id)
            if not tried - {route.replica_id}:  # the first attempt: all before it was the gateway's work
                ex.before_s = self.clock() - ex.started - ex.waited_s
            ex.delivered = True  # until the call proves it never arrived, or was dropped
            try:
                # the replica's own token; the caller's Authorization never reaches it (NOT_FORWARDED)
                auth = [("authorization", f"Bearer {route.token}")] if route.token else []
                response = await self.client.send(
                    call.method, route.address + path, call.query, body, [*headers, *auth]
                )
            except NotAnswered as exc:
                ex.delivered = False
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
                ex.delivered = False  # not charged: the replica failed, not the caller
                release()
                self._withdraw(
                    route, view.namespace, view.name, f"closed the connection before answering ({exc})"
                )
                raise APIError(
                    502,
                    "the replica closed the connection before answering; the request was not sent "
                    "to another replica, as it may be what failed: retry if it is safe to",
                    code="upstream_dropped",
                ) from None
            except NoFirstByte as exc:
                release()  # the cancelled call closed the connection: the engine aborts the request
                raise APIError(
                    504,
                    f"the replica did not begin answering in time ({exc}): retry later, or with a "
                    "shorter request",
                    code="upstream_timeout",
                ) from None
            except BaseException:
                release()
                raise
            if can_fall_back and response.status_code in _UNAVAILABLE:
                ex.delivered = False  # refused by the replica: the fallback may take it instead
                await response.close()
                release()
                raise APIError(
                    response.status_code, f"{view.namespace}/{view.name} answered {response.status_code}"
                )
            return response, route, release
        raise APIError(
            503,
            f"no replica of {view.namespace}/{view.name} answered: retry in a few seconds",
            code="no_ready_replica",
        )

    def _relay(self, ex: Exchange, call: Call, upstream: UpstreamResponse) -> Response:
        ex.status = upstream.status_code
        drop = HOP_BY_HOP if (call.strip_usage or ex.translation) else HOP_BY_HOP - {"content-length"}
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in drop}
        if ex.translation is not None:
            return ex.translation.response(
                upstream, self._relay_body(ex, call, upstream), lambda: self._close(ex)
            )
        return RelayedResponse(self._relay_body(ex, call, upstream), upstream.status_code, headers,
                               lambda: self._close(ex))  # fmt: skip

    async def _relay_body(self, ex: Exchange, call: Call, upstream: UpstreamResponse) -> AsyncIterator[bytes]:
        sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
        meter = ex.meter = Meter(sse, call.strip_usage, upstream.headers)
        try:
            async for chunk in upstream.chunks():
                received = self.clock()
                out = meter.feed(chunk)
                if ex.transcript is not None:
                    ex.transcript.feed(chunk, sse)
                if out:
                    yield out  # resumes once the chunk was handed to the client's socket
                ex.relay_s += self.clock() - received
            tail = meter.finish()
            if tail:
                yield tail
        except BrokenAnswer as exc:
            self._replica_lost(ex, exc)
            if not meter.sse:
                raise  # a JSON body cannot be ended cleanly: the client sees a truncated answer
            err = APIError(
                502, "the replica serving this request failed mid-answer; the answer is incomplete: retry"
            )
            yield error_event(err, call.dialect)

    def _replica_lost(self, ex: Exchange, exc: Exception) -> None:
        ex.status = 502
        if ex.route is None:
            return
        self._withdraw(ex.route, ex.namespace, ex.served_by, f"failed mid-answer ({exc})")

    def _withdraw(self, route: Route, namespace: str, name: str, why: str) -> None:
        """Take a replica out of rotation until the control loop has looked at it again."""
        log.warning("replica %s of %s/%s %s; out of rotation", route.replica_id[:8], namespace, name, why)
        self.metrics.replica_lost.labels(namespace, name).inc()
        self.table.withdraw(route.replica_id)
        self.on_replica_lost(route.replica_id)

    # -- the end of every admitted request ---------------------------------------------------
    async def _close(self, ex: Exchange) -> None:
        if ex.upstream is not None:
            await ex.upstream.close()
        self._finish(ex)

    def _finish(self, ex: Exchange) -> None:
        """Release the slot and in-flight counts; meter, charge and record the request. Once."""
        if ex.finished:
            return
        ex.finished = True
        for release in ex.releases:
            release()
        now = self.clock()
        latency = now - ex.started
        meter = ex.meter
        prompt = meter.prompt_tokens if meter else 0
        completion = meter.completion_tokens if meter else 0
        if not prompt and ex.delivered and (ex.upstream is None or ex.upstream.status_code < 400):
            # the engine took the prompt but never said: a stream cut short, a client that left
            # before the answer began, a first-byte deadline
            prompt = ex.call.prompt_estimate if ex.call is not None else 0
        if ex.reservation is not None:
            self.limiter.settle(ex.reservation, prompt + completion, now, self.wall())
        elif ex.principal is not None:
            self.limiter.charge(ex.principal, prompt + completion, now, self.wall())
        labels = (ex.namespace, ex.endpoint)
        self.metrics.requests.labels(*labels, ex.served_by, str(ex.status)).inc()
        self.metrics.latency.labels(*labels).observe(latency)
        if ex.first_byte_s is not None:
            self.metrics.first_byte.labels(*labels).observe(ex.first_byte_s)
            if meter is not None and meter.sse and completion > 1:
                per_token = (latency - ex.first_byte_s) / (completion - 1)
                self.metrics.time_per_output_token.labels(*labels).observe(per_token)
            self.metrics.overhead.labels(*labels, "before").observe(ex.before_s)
            self.metrics.overhead.labels(*labels, "relay").observe(ex.relay_s)
        if prompt:
            self.metrics.tokens.labels(*labels, "prompt").inc(prompt)
        if completion:
            self.metrics.tokens.labels(*labels, "completion").inc(completion)
        kept = ex.transcript
        text = kept.kept(ex.request_id, ex.namespace, ex.endpoint, ex.started_at) if kept else None
        self.usage.record(
            UsageRecord(
                request_id=ex.request_id,
                key_id=ex.principal.key_id if ex.principal else None,
                namespace=ex.namespace,
                endpoint=ex.endpoint,
                served_by=ex.served_by,
                policy=ex.policy,
                replica_id=ex.route.replica_id if ex.route else None,
                path=ex.path[:256],
                status=ex.status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_ms=latency * 1000,
                first_byte_ms=ex.first_byte_s * 1000 if ex.first_byte_s is not None else None,
                started_at=ex.started_at,
                client=ex.client,
                model=ex.model[:512] if ex.model else None,
                revision=ex.revision[:128] if ex.revision else None,
            ),
            text,
        )


def _refuse_if_down(view: EndpointView) -> None:
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


def _hold_seconds(header: str | None, default_s: float) -> float:
    """X-Scale-Up-Timeout (seconds) when given as a finite number, else the gateway's hold
    limit; never past MAX_HOLD_S (`nan` and `inf` parse as floats but are not honoured)."""
    try:
        value = float(header) if header is not None else default_s
    except ValueError:
        value = default_s
    if not math.isfinite(value):
        value = default_s
    return min(max(value, 0.0), MAX_HOLD_S)


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed its connection (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
