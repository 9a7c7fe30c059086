"""Which endpoint serves a request: its own, the one its overflow policy names while more than
`queueAbove` requests are outstanding, and its fallback when it cannot serve (paused, failed,
no ready replica, a replica that refused the request with 5xx). Pure: decided from the views
the control loop published and the endpoint's outstanding count; nothing here waits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelport.gateway.errors import UNAVAILABLE
from modelport.gateway.routing import EndpointView
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import Intent

# a replica took these requests and then failed them: replaying one on another endpoint could
# crash or hang that one too
_NOT_REPLAYED = frozenset({"upstream_dropped", "upstream_timeout"})


@dataclass(frozen=True, slots=True)
class Target:
    view: EndpointView  # the endpoint to try
    policy: str | None = None  # overflow | fallback: the traffic policy that sent the request here
    can_fall_back: bool = False  # a fallback follows: an unavailable endpoint is not waited for


def choose(
    view: EndpointView, views: Mapping[tuple[str, str], EndpointView], outstanding: int
) -> tuple[Target, ...]:
    """The endpoints to try, in order: `view` (or its overflow target, with no fallback), then
    its fallback if it has a usable one. `outstanding`: `view`'s requests in flight + queued."""
    overflow = view.traffic.overflow
    if overflow is not None and outstanding > overflow.queue_above:
        target = usable(overflow.endpoint, view, views)
        if target is not None:
            return (Target(target, "overflow"),)
    fallback = usable(view.traffic.fallback, view, views)
    if fallback is None:
        return (Target(view),)
    return (Target(view, can_fall_back=True), Target(fallback, "fallback"))


def usable(
    name: str | None, origin: EndpointView, views: Mapping[tuple[str, str], EndpointView]
) -> EndpointView | None:
    """The endpoint a policy names, in the origin's namespace, unless it is gone or paused."""
    if name is None:
        return None
    view = views.get((origin.namespace, name))
    if view is None or view.intent in (Intent.PAUSED, Intent.DELETING):
        return None
    return view


def falls_back(err: APIError) -> bool:
    """Whether a target that failed with `err` hands the request to its fallback."""
    return err.status in UNAVAILABLE and err.code not in _NOT_REPLAYED
