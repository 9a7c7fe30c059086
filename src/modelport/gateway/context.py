"""One request's facts, fixed when it arrives: what was called, from where, when, for how long it
may be held, and (once authenticated) by whom. Immutable: a stage that learns something returns
it; it never writes it here."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request

from modelport.auth.api_keys import Principal
from modelport.protocol.errors import Dialect, dialect_for_path

MAX_HOLD_S = 600.0  # the longest a request may ask to be held while an endpoint starts
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str  # the caller's X-Request-ID when it is well formed, else a new one
    namespace: str
    endpoint: str  # the endpoint called (a traffic policy may have another one serve it)
    path: str  # the route on the endpoint, e.g. /v1/chat/completions
    method: str
    query: str | None  # None: not UTF-8 (refused with a 400 once the caller is known)
    dialect: Dialect  # of the route called: the shape of its errors
    client: str | None  # the caller's address (None: unknown)
    started: float  # monotonic seconds
    started_at: datetime
    hold_s: float  # the longest it may wait for a starting endpoint (X-Scale-Up-Timeout)
    principal: Principal | None = None  # once authenticated; None: anonymous

    def authenticated(self, principal: Principal | None) -> RequestContext:
        """This context with its caller's principal (positional: `replace` costs a few µs)."""
        return RequestContext(self.request_id, self.namespace, self.endpoint, self.path, self.method,
                              self.query, self.dialect, self.client, self.started, self.started_at,
                              self.hold_s, principal)  # fmt: skip


def arrive(
    request: Request,
    namespace: str,
    name: str,
    path: str,
    clock: Callable[[], float],
    wall: Callable[[], datetime],
    default_hold_s: float,
) -> RequestContext:
    """The context of a request to `namespace/name` + `path`, arriving now. Its clock starts
    once its id is known (as the gateway's overhead metric has always counted)."""
    headers = request.headers
    given_id = headers.get("x-request-id")
    request_id = given_id if given_id and _REQUEST_ID.match(given_id) else uuid.uuid4().hex
    started, started_at = clock(), wall()
    peer = request.client
    return RequestContext(
        request_id,
        namespace,
        name,
        path,
        request.method,
        query_of(request.scope.get("query_string", b"")),
        dialect_for_path(path),
        peer.host if peer else None,
        started,
        started_at,
        hold_seconds(headers.get("x-scale-up-timeout"), default_hold_s),
    )


def query_of(raw: bytes) -> str | None:
    """The query string as `Request.url.query` reads it (less a `#` fragment, tab, CR and LF, as
    urlsplit drops them), without building and parsing the whole URL; None when not UTF-8."""
    if not raw:
        return ""
    try:
        query = raw.decode()
    except UnicodeDecodeError:
        return None
    if "\t" in query or "\r" in query or "\n" in query:
        query = query.replace("\t", "").replace("\r", "").replace("\n", "")
    return query.partition("#")[0]


def hold_seconds(header: str | None, default_s: float) -> float:
    """X-Scale-Up-Timeout (seconds) when given as a finite number, else the gateway's hold
    limit; never past MAX_HOLD_S (`nan` and `inf` parse as floats but are not honoured)."""
    if header is None:
        value = default_s
    else:
        try:
            value = float(header)
        except ValueError:
            value = default_s
    if not math.isfinite(value):
        value = default_s
    return min(max(value, 0.0), MAX_HOLD_S)
