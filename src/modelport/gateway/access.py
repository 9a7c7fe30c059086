"""Who may call an endpoint: the access type, the key's scope and, for private endpoints, the
caller's network. Pure: the gateway passes what it knows and gets a principal or an `APIError`.

No answer tells a caller more than its credentials entitle it to: without a valid key every
non-public endpoint, existing or not, answers the same 401; with a key, an endpoint that does
not exist, lies outside the key's scope or refuses the caller's network answers the same 403.
Only the admin token learns that an endpoint does not exist (404).

The caller's network is the TCP peer's address. X-Forwarded-For counts only when the peer is a
proxy the operator named (`modelport up --trusted-proxy CIDR`): then the caller is the right-most
address that is not such a proxy (`ip:port` and `[ipv6]:port` hops are read as their address).
A hop that is not an IP address makes the caller unknown (None: refused by `private` endpoints,
recorded without an address), so no header text reaches the network check, the usage records
or the audit trail, and a proxy's own address never stands in for a caller it could not name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime

from modelport.auth.api_keys import AuthError, KeyRing, Principal
from modelport.gateway.routing import EndpointView, IPNetwork
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointType, Intent

DEFAULT_PRIVATE_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def in_networks(peer: str | None, networks: Sequence[IPNetwork]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str | None:
    """The caller's address: `peer`, or, when `peer` is a trusted proxy, the right-most address of
    the X-Forwarded-For values (in header order) that is not one; None when a hop on the way is
    not an IP address. A trusted proxy that sends no header is itself the caller."""
    if not trusted or not in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        client = _hop_address(hop)
        if client is None or not in_networks(client, trusted):
            return client
    return client


def _hop_address(hop: str) -> str | None:
    """A forwarded hop's IP address (`1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`), or None."""
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def denied(namespace: str, name: str) -> APIError:
    return APIError(
        403,
        f"access to {namespace}/{name} denied: the endpoint does not exist, is outside this key's "
        "scope, or does not accept calls from your network",
        code="access_denied",
    )


def authorize(
    view: EndpointView | None,
    namespace: str,
    name: str,
    authorization: str | None,
    peer: str | None,
    keys: KeyRing,
    default_networks: Sequence[IPNetwork],
    now: datetime,
) -> Principal | None:
    """The caller's principal (None: anonymous on a public endpoint), or raise 401/403/404."""
    exists = view is not None and view.intent != Intent.DELETING
    if exists and view is not None and view.type == EndpointType.PUBLIC:
        try:  # a key on a public endpoint is optional, but when valid its limits and usage apply
            return keys.authenticate(authorization, now) if authorization else None
        except AuthError:
            return None
    try:
        principal = keys.authenticate(authorization, now)
    except AuthError as err:
        raise APIError(401, str(err), code="invalid_api_key") from None
    if not exists or view is None:
        if principal.key_id is None:
            raise APIError(404, f"no endpoint {namespace}/{name}", code="endpoint_not_found")
        raise denied(namespace, name)
    if not principal.may_call(namespace, name):
        raise denied(namespace, name)
    if view.type == EndpointType.PRIVATE:
        allowed = view.networks or default_networks
        if not in_networks(peer, allowed):
            raise denied(namespace, name)
    return principal
