"""Who may call an endpoint, and that refusals reveal nothing they should not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelport.auth.admin_token import token_hash
from modelport.auth.api_keys import KeyRing, key_id_of, new_key, secret_hash
from modelport.gateway.access import (
    DEFAULT_PRIVATE_NETWORKS,
    authorize,
    forwarded_client,
    in_networks,
    parse_networks,
)
from modelport.gateway.routing import EndpointView
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.store.records import ApiKeyRecord

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ADMIN_TOKEN = "mp_admin_secret"


def view(kind: EndpointType, networks: tuple[str, ...] = ()) -> EndpointView:
    return EndpointView("default", "chat", kind, Intent.ACTIVE, EndpointState.RUNNING, "",
                        networks=parse_networks(networks))  # fmt: skip


def ring_with(**fields: object) -> tuple[KeyRing, str]:
    key_id, key = new_key()
    base: dict[str, object] = {
        "id": key_id,
        "name": "k",
        "secret_hash": secret_hash(key),
        "scopes": ["inference"],
        "endpoints": ["*"],
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "token_budget": None,
        "budget_period": "month",
        "created_at": NOW,
        "expires_at": None,
        "revoked_at": None,
        "rotated_to": None,
    }
    record = ApiKeyRecord(**{**base, **fields})  # type: ignore[arg-type]
    ring = KeyRing(token_hash(ADMIN_TOKEN))
    ring.replace([record])
    return ring, key


def call(
    v: EndpointView | None, ring: KeyRing, key: str | None, peer: str = "127.0.0.1", name: str = "chat"
) -> object:
    auth = f"Bearer {key}" if key else None
    return authorize(v, "default", name, auth, peer, ring, parse_networks(DEFAULT_PRIVATE_NETWORKS), NOW)


def refusal(*args: object, **kwargs: object) -> tuple[int, str]:
    with pytest.raises(APIError) as info:
        call(*args, **kwargs)  # type: ignore[arg-type]
    return info.value.status, info.value.message


def test_key_format_round_trips() -> None:
    key_id, key = new_key()
    assert key_id_of(key) == key_id and key.startswith(f"mp_{key_id}_")
    assert key_id_of("mp_admin_x") is None and key_id_of("sk-abc") is None


def test_protected_endpoint_needs_a_valid_key() -> None:
    ring, key = ring_with()
    assert call(view(EndpointType.PROTECTED), ring, key).key_id == key_id_of(key)  # type: ignore[attr-defined]
    assert refusal(view(EndpointType.PROTECTED), ring, None)[0] == 401
    assert refusal(view(EndpointType.PROTECTED), ring, key + "x") == (401, "invalid API key")
    # no key: a missing endpoint looks exactly like a protected one
    assert refusal(None, ring, None) == refusal(view(EndpointType.PROTECTED), ring, None)


def test_public_endpoint_takes_anyone_and_still_accounts_a_valid_key() -> None:
    ring, key = ring_with()
    assert call(view(EndpointType.PUBLIC), ring, None) is None
    assert call(view(EndpointType.PUBLIC), ring, "garbage") is None
    assert call(view(EndpointType.PUBLIC), ring, key).key_id == key_id_of(key)  # type: ignore[attr-defined]


def test_expired_and_revoked_keys_say_so_only_to_their_holder() -> None:
    ring, key = ring_with(expires_at=NOW - timedelta(seconds=1))
    status, message = refusal(view(EndpointType.PROTECTED), ring, key)
    assert status == 401 and "expired" in message
    ring, key = ring_with(revoked_at=NOW)
    assert "revoked" in refusal(view(EndpointType.PROTECTED), ring, key)[1]
    assert refusal(view(EndpointType.PROTECTED), ring, key[:-2] + "zz") == (401, "invalid API key")


def test_scope_and_private_networks_answer_the_same_403_as_a_missing_endpoint() -> None:
    ring, key = ring_with(endpoints=["team/*"])
    scoped = refusal(view(EndpointType.PROTECTED), ring, key)
    missing = refusal(None, ring, key)
    assert scoped[0] == 403 and scoped == missing
    ring, key = ring_with(scopes=["admin"])
    assert refusal(view(EndpointType.PROTECTED), ring, key) == scoped
    ring, key = ring_with()
    private = view(EndpointType.PRIVATE, ("10.0.0.0/8",))
    assert refusal(private, ring, key, peer="192.168.1.5") == scoped
    assert refusal(private, ring, key, peer="127.0.0.1") == scoped  # its own list replaces the default
    assert call(private, ring, key, peer="10.1.2.3") is not None
    assert call(view(EndpointType.PRIVATE), ring, key, peer="192.168.1.5") is not None  # default list
    assert refusal(view(EndpointType.PRIVATE), ring, key, peer="8.8.8.8") == scoped


def test_admin_token_learns_an_endpoint_is_missing() -> None:
    ring, _ = ring_with()
    assert refusal(None, ring, ADMIN_TOKEN)[0] == 404
    assert call(view(EndpointType.PROTECTED), ring, ADMIN_TOKEN).key_id is None  # type: ignore[attr-defined]


def test_ipv4_mapped_ipv6_peers_match_ipv4_networks() -> None:
    assert in_networks("::ffff:10.0.0.7", parse_networks(["10.0.0.0/8"]))
    assert not in_networks("not-an-ip", parse_networks(["0.0.0.0/0"]))
    assert not in_networks(None, parse_networks(["0.0.0.0/0"]))


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "client"),
    [
        # no trusted proxy (the default): the TCP peer, whatever the header says
        ("127.0.0.1", ["10.1.2.3"], (), "127.0.0.1"),
        # a trusted proxy: the right-most address that is not a trusted proxy
        ("127.0.0.1", ["10.1.2.3"], ("127.0.0.1/32",), "10.1.2.3"),
        ("127.0.0.1", ["6.6.6.6, 10.1.2.3, 127.0.0.5"], ("127.0.0.0/8",), "10.1.2.3"),
        ("127.0.0.1", ["6.6.6.6", "10.1.2.3"], ("127.0.0.1/32",), "10.1.2.3"),
        # a peer outside the trusted networks is the caller, header or not
        ("192.168.1.9", ["10.1.2.3"], ("127.0.0.1/32",), "192.168.1.9"),
        # proxies that append the port
        ("10.0.0.5", ["203.0.113.9:4711"], ("10.0.0.5/32",), "203.0.113.9"),
        ("10.0.0.5", ["[2001:db8::1]:443"], ("10.0.0.5/32",), "2001:db8::1"),
        ("10.0.0.5", ["2001:db8::1"], ("10.0.0.5/32",), "2001:db8::1"),
        # a hop that is not an address makes the caller unknown: never the header's text, and
        # never the proxy's own (private) address standing in for a caller it could not name
        ("127.0.0.1", ["garbage<script>"], ("127.0.0.1/32",), None),
        ("10.0.0.5", ["unknown"], ("10.0.0.5/32",), None),
        ("127.0.0.1", ["10.1.2.3, 10.0.0.1 ; drop"], ("127.0.0.1/32",), None),
        ("127.0.0.1", ["10.1.2.3, "], ("127.0.0.1/32",), None),
        # a trusted proxy that forwards no header is itself the caller (its own health checks)
        ("127.0.0.1", [], ("127.0.0.1/32",), "127.0.0.1"),
    ],
)
def test_forwarded_for_counts_only_from_a_trusted_proxy(
    peer: str, header: list[str], trusted: tuple[str, ...], client: str | None
) -> None:
    assert forwarded_client(peer, header, parse_networks(trusted)) == client
