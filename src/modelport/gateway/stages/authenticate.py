"""Who is calling: the context gets its caller's principal, or the request ends with 401/403/404
(gateway/access.py decides; it never tells a caller more than its key entitles it to)."""

from __future__ import annotations

from collections.abc import Sequence

from modelport.auth.api_keys import KeyRing
from modelport.gateway.access import authorize
from modelport.gateway.context import RequestContext
from modelport.gateway.routing import EndpointView, IPNetwork


def authenticate(
    ctx: RequestContext,
    view: EndpointView | None,
    authorization: str | None,
    keys: KeyRing,
    private_networks: Sequence[IPNetwork],
) -> RequestContext:
    """`ctx` with its principal (None: anonymous on a public endpoint); raises 401/403/404,
    404 also for an endpoint that does not exist (so `view` is not None once this returns)."""
    principal = authorize(
        view,
        ctx.namespace,
        ctx.endpoint,
        authorization,
        ctx.client,
        keys,
        private_networks,
        ctx.started_at,
    )
    return ctx.authenticated(principal)
