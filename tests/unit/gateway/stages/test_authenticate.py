"""Who is calling (gateway/stages/authenticate.py over a real KeyRing): the context gets the
caller's principal, or the request ends with 401/403/404, telling a prober nothing more."""

from __future__ import annotations

import pytest

from modelport.gateway.access import DEFAULT_PRIVATE_NETWORKS, parse_networks
from modelport.gateway.stages.authenticate import authenticate
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointType, Intent

from ..neighbours import ADMIN_TOKEN, context, endpoint, keyring

NETWORKS = parse_networks(DEFAULT_PRIVATE_NETWORKS)


def refused(view: object, authorization: str | None, **ctx: object) -> APIError:
    ring, _, _ = keyring()
    with pytest.raises(APIError) as err:
        authenticate(context(**ctx), view, authorization, ring, NETWORKS)  # type: ignore[arg-type]
    return err.value


def test_a_valid_key_becomes_the_contexts_principal_and_nothing_else_changes() -> None:
    ring, key_id, key = keyring(token_budget=1000)
    ctx = context()
    after = authenticate(ctx, endpoint(), f"Bearer {key}", ring, NETWORKS)
    assert after.principal is not None and after.principal.key_id == key_id
    assert after.principal.token_budget == 1000
    assert after.authenticated(None) == ctx


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer mp_" + "x" * 10_000, "Bearer \x00\x01"],
)
def test_no_valid_key_on_a_protected_endpoint_is_a_401(authorization: str | None) -> None:
    err = refused(endpoint(), authorization)
    assert err.status == 401 and err.code == "invalid_api_key"


def test_a_key_learns_nothing_about_endpoints_it_may_not_call() -> None:
    ring, _, key = keyring(endpoints=["default/other"])
    for view in (endpoint(), None, endpoint(intent=Intent.DELETING)):  # outside its scope, missing, going
        with pytest.raises(APIError) as err:
            authenticate(context(), view, f"Bearer {key}", ring, NETWORKS)
        assert err.value.status == 403 and err.value.code == "access_denied"


def test_only_the_admin_token_learns_that_an_endpoint_does_not_exist() -> None:
    err = refused(None, f"Bearer {ADMIN_TOKEN}")
    assert err.status == 404 and err.code == "endpoint_not_found"


def test_a_public_endpoint_takes_anonymous_callers_and_ignores_a_bad_key() -> None:
    ring, key_id, key = keyring()
    public = endpoint(type=EndpointType.PUBLIC)
    assert authenticate(context(), public, None, ring, NETWORKS).principal is None
    assert authenticate(context(), public, "Bearer wrong", ring, NETWORKS).principal is None
    known = authenticate(context(), public, f"Bearer {key}", ring, NETWORKS).principal
    assert known is not None and known.key_id == key_id  # its limits and usage apply


def test_a_private_endpoint_refuses_callers_outside_its_networks() -> None:
    ring, _, key = keyring()
    private = endpoint(type=EndpointType.PRIVATE)
    assert authenticate(context(client="10.1.2.3"), private, f"Bearer {key}", ring, NETWORKS).principal
    for outside in ("8.8.8.8", None, "not-an-address"):
        with pytest.raises(APIError) as err:
            authenticate(context(client=outside), private, f"Bearer {key}", ring, NETWORKS)
        assert err.value.status == 403
