"""The endpoint URL: an authenticated reverse proxy from `/endpoints/{ns}/{name}/...` to a replica.

Order per request: find the endpoint in the routing table → check the token (unless the
endpoint is public) → answer for an endpoint that cannot serve (paused, scaled to zero,
failed, starting) → pick the least busy ready replica → forward and stream the answer back.
A replica that refuses the connection or drops it before answering is skipped and the
request goes to the next one (nothing has reached the client yet, and generation requests
have no side effects), so a replica stopping during a rollout costs no request. The client's
token is never forwarded to replicas. Errors are in the dialect of the route the client
called (OpenAI under /v1, TGI/TEI elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelport.control.admin_token import bearer_matches
from modelport.gateway.routing import EndpointView, RoutingTable
from modelport.protocol.errors import APIError
from modelport.protocol.http import error_response
from modelport.spec.endpoint import EndpointState, Intent

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
    }
)
RETRY_AFTER_S = 5
MAX_HOLD_S = 600.0  # the longest a request may ask to be held while an endpoint starts
DEFAULT_HOLD_S = 120.0

WakeUp = Callable[[str, str], Awaitable[None]]


class Gateway:
    def __init__(
        self,
        table: RoutingTable,
        admin_token_hash: bytes,
        client: httpx.AsyncClient,
        wake_up: WakeUp,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> None:
        self.hold_s = hold_s
        self.table = table
        self.admin_token_hash = admin_token_hash
        self.client = client
        self.wake_up = wake_up

    async def handle(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        name = request.path_params["name"]
        path = "/" + request.path_params.get("path", "")
        try:
            view = self._servable(namespace, name, request.headers.get("authorization"))
            body = await request.body()
            if not view.routes:
                hold_s = _hold_seconds(request.headers.get("x-scale-up-timeout"), self.hold_s)
                view = await self._hold(view, hold_s)
            return await self._forward(view, request, path, body)
        except APIError as err:
            return _error_response(err, path)

    def _servable(self, namespace: str, name: str, authorization: str | None) -> EndpointView:
        view = self.table.get(namespace, name)
        if view is None or view.intent == Intent.DELETING:
            raise APIError(404, f"no endpoint {namespace}/{name}", code="endpoint_not_found")
        if view.type.needs_token and not bearer_matches(authorization, self.admin_token_hash):
            raise APIError(401, "missing or invalid token: send Authorization: Bearer <token>")
        return view

    async def _hold(self, view: EndpointView, hold_s: float) -> EndpointView:
        """Wait (up to hold_s) for a ready replica, waking a scaled-to-zero endpoint first."""
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

    async def _forward(self, view: EndpointView, request: Request, path: str, body: bytes) -> Response:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        if request.client:
            headers.append(("x-forwarded-for", request.client.host))
        tried: set[str] = set()
        while (route := self.table.pick(view, frozenset(tried))) is not None:
            tried.add(route.replica_id)
            upstream = self.client.build_request(
                request.method,
                route.address + path,
                params=request.url.query,
                content=body,
                headers=headers,
            )
            release = self.table.acquire(route.replica_id)
            try:
                response = await self.client.send(upstream, stream=True)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ConnectTimeout) as exc:
                release()
                log.warning(
                    "replica %s of %s/%s did not answer (%s); trying another",
                    route.replica_id[:8],
                    view.namespace,
                    view.name,
                    type(exc).__name__,
                )
                continue
            except BaseException:
                release()
                raise
            return RelayedResponse(response, release)
        raise APIError(
            503,
            f"no replica of {view.namespace}/{view.name} answered: retry in a few seconds",
            code="no_ready_replica",
        )


class RelayedResponse(StreamingResponse):
    """Streams a replica's answer to the client; always closes the upstream response and ends
    the in-flight count, whether the body finished, the client went away or it never started."""

    def __init__(self, upstream: httpx.Response, release: Callable[[], None]) -> None:
        # content-length is kept: the raw (still encoded) bytes are relayed as they are
        headers = {
            k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP - {"content-length"}
        }
        super().__init__(upstream.aiter_raw(), status_code=upstream.status_code, headers=headers)
        self.upstream = upstream
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # shielded: after a disconnect this runs in a cancelled scope, and closing the upstream
            # connection is what tells the engine to abort the request
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
            self.release()


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
        raise APIError(503, f"endpoint {ref} failed: {view.message}", code="endpoint_failed")


def _hold_seconds(header: str | None, default_s: float) -> float:
    """X-Scale-Up-Timeout (seconds) when given and valid, else the gateway's hold limit."""
    try:
        value = float(header) if header is not None else default_s
    except ValueError:
        value = default_s
    return min(max(value, 0.0), MAX_HOLD_S)


def _error_response(err: APIError, path: str) -> Response:
    headers: dict[str, str] = {}
    if err.status == 503:
        retryable = err.code not in ("endpoint_paused", "endpoint_failed")
        headers["x-should-retry"] = "true" if retryable else "false"
        if retryable:
            headers["retry-after"] = str(RETRY_AFTER_S)
    return error_response(path, err, headers)
