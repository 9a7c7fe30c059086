"""A request's context, fixed at arrival (gateway/context.py): its id, its hold time, its query
as the replica will get it, and hostile values of each."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from modelport.gateway.context import MAX_HOLD_S, RequestContext, arrive, hold_seconds, query_of
from modelport.protocol.errors import Dialect

from .neighbours import NOW, context, keyring, principal, request


def arrived(headers: dict[str, str] | None = None, **kw: object) -> RequestContext:
    return arrive(request(headers, **kw), "default", "chat", "/v1/chat/completions",  # type: ignore[arg-type]
                  lambda: 7.0, lambda: NOW, 120.0)  # fmt: skip


def test_arrival_fixes_what_was_called_from_where_and_when() -> None:
    ctx = arrived({"x-request-id": "abc-123"}, query=b"a=1")
    assert (ctx.request_id, ctx.namespace, ctx.endpoint, ctx.path, ctx.method) == (
        "abc-123", "default", "chat", "/v1/chat/completions", "POST"
    )  # fmt: skip
    assert (ctx.query, ctx.dialect, ctx.client, ctx.started, ctx.started_at) == (
        "a=1", Dialect.OPENAI, "127.0.0.1", 7.0, NOW
    )  # fmt: skip
    assert ctx.hold_s == 120.0 and ctx.principal is None


@pytest.mark.parametrize(
    "given",
    ["", "has space", "x" * 65, "ünïcode", "line\nbreak", "../../etc", "a;b", "<script>"],
)
def test_a_malformed_request_id_is_replaced_by_a_fresh_one(given: str) -> None:
    ctx = arrived({"x-request-id": given.encode("utf-8").decode("latin-1")})
    assert re.fullmatch(r"[0-9a-f]{32}", ctx.request_id)


def test_every_request_without_an_id_gets_its_own() -> None:
    assert arrived().request_id != arrived().request_id


def test_an_unknown_caller_address_is_none() -> None:
    assert arrived(client=None).client is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 120.0),
        ("30", 30.0),
        ("-5", 0.0),
        ("1e9", MAX_HOLD_S),
        ("1e308", MAX_HOLD_S),
        ("nan", 120.0),
        ("inf", 120.0),
        ("-inf", 120.0),
        ("soon", 120.0),
        ("", 120.0),
    ],
)
def test_the_hold_header_is_finite_and_capped(header: str | None, expected: float) -> None:
    assert hold_seconds(header, 120.0) == expected
    if header is not None:
        assert arrived({"x-scale-up-timeout": header}).hold_s == expected


def test_the_query_is_what_request_url_query_reads_without_building_the_url() -> None:
    alphabet = b"ab=&?#%\t\r\n /:;@[]+\x00\x7f\x80\xc3\xa9\xff"
    rnd = random.Random(18)
    cases = [b"", b"a=1", b"a=1#frag", b"a=\t1\r\n", "é=ü".encode(), b"q=\xff"]
    cases += [bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10))) for _ in range(2000)]
    for raw in cases:
        try:
            expected: str | None = request(query=raw).url.query
        except UnicodeDecodeError:
            expected = None  # refused with a 400 once the caller is known (admit)
        assert query_of(raw) == expected, raw


def test_authenticated_adds_the_principal_and_keeps_the_rest() -> None:
    ring, _, key = keyring()
    ctx = context(query="a=1", hold_s=3.0)
    after = ctx.authenticated(principal(ring, key))
    assert after == dataclasses.replace(ctx, principal=principal(ring, key))
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.request_id = "another"  # type: ignore[misc]
