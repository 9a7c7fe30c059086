"""Which endpoints a request tries, in order (gateway/stages/route.py): a pure choice from the
published views and the endpoint's outstanding count."""

from __future__ import annotations

import pytest

from modelport.gateway.routing import EndpointView
from modelport.gateway.stages.route import Target, choose, falls_back
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import Intent
from modelport.spec.traffic import Overflow, Traffic

from ..neighbours import endpoint

SPARE = endpoint("spare")
BACKUP = endpoint("backup")


def views(*extra: EndpointView) -> dict[tuple[str, str], EndpointView]:
    return {("default", v.name): v for v in (SPARE, BACKUP, *extra)}


def test_an_endpoint_without_policies_serves_itself() -> None:
    view = endpoint()
    assert choose(view, views(), outstanding=10_000) == (Target(view),)


def test_overflow_sends_the_request_on_only_past_queue_above() -> None:
    view = endpoint(traffic=Traffic(overflow=Overflow(endpoint="spare", queue_above=2)))
    assert choose(view, views(), outstanding=2) == (Target(view),)
    assert choose(view, views(), outstanding=3) == (Target(SPARE, "overflow"),)


@pytest.mark.parametrize("intent", [Intent.PAUSED, Intent.DELETING, None])
def test_a_policy_never_names_an_endpoint_that_is_paused_going_or_missing(intent: Intent | None) -> None:
    named = endpoint("spare", intent=intent) if intent else None
    others = {k: v for k, v in views().items() if k != ("default", "spare")}
    if named is not None:
        others[("default", "spare")] = named
    view = endpoint(traffic=Traffic(overflow=Overflow(endpoint="spare", queue_above=0), fallback="spare"))
    assert choose(view, others, outstanding=5) == (Target(view),)


def test_a_fallback_follows_the_endpoint_which_then_does_not_wait() -> None:
    view = endpoint(traffic=Traffic(fallback="backup"))
    assert choose(view, views(), outstanding=0) == (
        Target(view, can_fall_back=True),
        Target(BACKUP, "fallback"),
    )


def test_an_overflowed_request_has_no_fallback() -> None:
    view = endpoint(traffic=Traffic(overflow=Overflow(endpoint="spare", queue_above=0), fallback="backup"))
    assert choose(view, views(), outstanding=1) == (Target(SPARE, "overflow"),)


def test_a_policy_stays_in_the_endpoints_namespace() -> None:
    view = endpoint(traffic=Traffic(fallback="backup"))
    elsewhere = {("other", "backup"): BACKUP}
    assert choose(view, elsewhere, outstanding=0) == (Target(view),)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (503, "no_ready_replica", True),
        (503, "endpoint_paused", True),
        (502, None, True),
        (504, None, True),
        (502, "upstream_dropped", False),  # the replica may have crashed on this very request
        (504, "upstream_timeout", False),
        (429, "endpoint_busy", False),
        (500, None, False),
        (422, None, False),
    ],
)
def test_which_failures_hand_the_request_to_the_fallback(
    status: int, code: str | None, expected: bool
) -> None:
    assert falls_back(APIError(status, "x", code=code)) is expected
