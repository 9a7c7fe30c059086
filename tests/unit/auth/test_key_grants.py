"""What a key may give another key (auth/api_keys.py Principal.may_grant)."""

from __future__ import annotations

import pytest

from modelport.auth.api_keys import Principal


def admin_key(*endpoints: str) -> Principal:
    return Principal(key_id="k", scopes=frozenset({"admin", "inference"}), endpoints=endpoints)


@pytest.mark.parametrize(
    ("mine", "given"),
    [
        (("team/chat-?",), "team/chat-*"),  # `?` would match the literal `*`
        (("a/?",), "a/*"),
        (("team/*",), "*"),
        (("team/chat-[ab]",), "team/chat-[a-z]"),
        (("team/x",), "team/*"),
    ],
)
def test_a_wildcard_wider_than_the_makers_own_is_refused(mine: tuple[str, ...], given: str) -> None:
    assert admin_key(*mine).may_grant({"inference"}, [given]) is not None


@pytest.mark.parametrize(
    ("mine", "given"),
    [
        (("team/*",), "team/chat"),
        (("team/*",), "team/*"),
        (("*",), "other/*"),
        (("team/chat-?",), "team/chat-1"),
    ],
)
def test_endpoints_within_the_makers_own_are_granted(mine: tuple[str, ...], given: str) -> None:
    assert admin_key(*mine).may_grant({"inference"}, [given]) is None


def test_a_scope_the_maker_lacks_is_refused() -> None:
    assert admin_key("*").may_grant({"host"}, ["*"]) is not None
