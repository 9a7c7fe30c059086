"""The key service on a real store and key ring: what a key gets by default, who may grant what,
expiry, revocation, rotation, usage, and the ring changing only once a change is committed."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from modelport.auth.admin_token import token_hash
from modelport.auth.api_keys import ADMIN, AuthError, KeyRing, Principal
from modelport.control.services.errors import ControlError
from modelport.control.services.key_service import Expiry, KeyChanges, KeyService
from modelport.store.records import UsageRecord
from modelport.store.repository import Store
from tests.unit.control.conftest import Clock


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing(token_hash("mp_admin_unit"))


@pytest.fixture
def keys(store: Store, ring: KeyRing, clock: Clock) -> KeyService:
    return KeyService(store, ring, clock)


def admin_key(
    scopes: frozenset[str] = frozenset({"admin", "inference"}), endpoints: tuple[str, ...] = ("*",)
) -> Principal:
    return Principal(key_id="000000000001", scopes=scopes, endpoints=endpoints)


def test_a_new_key_gets_the_defaults_and_works_at_once(keys: KeyService, ring: KeyRing, clock: Clock) -> None:
    issued = keys.create(KeyChanges(name="app"), ADMIN)
    record = issued.record
    assert record.name == "app" and record.scopes == ["inference"] and record.endpoints == ["*"]
    assert record.budget_period == "month" and record.token_budget is None and record.expires_at is None
    assert record.created_at == clock() and record.secret_hash != issued.secret
    principal = ring.authenticate(bearer(issued.secret), clock())
    assert principal.key_id == record.id and principal.may_call("default", "chat")
    assert keys.get(f"mp_{record.id}") == record  # the public prefix names it too


def test_limits_given_are_kept_and_the_rest_default(keys: KeyService) -> None:
    asked = KeyChanges(name="metered", limits={"token_budget": 1000, "requests_per_minute": 5})
    record = keys.create(asked, ADMIN).record
    assert (record.token_budget, record.requests_per_minute, record.tokens_per_minute) == (1000, 5, None)
    assert record.budget_period == "month"


def test_a_key_needs_a_name(keys: KeyService) -> None:
    with pytest.raises(ControlError) as refused:
        keys.create(KeyChanges(), ADMIN)
    assert (refused.value.status, refused.value.field) == (422, "name")


def test_an_admin_key_never_grants_more_than_it_has(keys: KeyService) -> None:
    team = admin_key(endpoints=("team/*",))
    with pytest.raises(ControlError) as refused:
        keys.create(KeyChanges(name="x", scopes=["inference", "host"]), team)
    assert refused.value.status == 403 and "host" in refused.value.message
    with pytest.raises(ControlError) as wider:
        keys.create(KeyChanges(name="x"), team)  # the default "*" is wider than team/*
    assert wider.value.status == 403
    made = keys.create(KeyChanges(name="x", endpoints=["team/chat"]), team).record
    assert made.endpoints == ["team/chat"]
    # nor acts on a key beyond its power
    other = keys.create(KeyChanges(name="root", scopes=["admin", "host"]), ADMIN).record
    for act in (lambda: keys.revoke(other.id, team), lambda: keys.rotate(other.id, timedelta(0), team)):
        with pytest.raises(ControlError) as beyond:
            act()
        assert beyond.value.status == 403


def test_expiry_after_a_while_at_a_time_or_never(keys: KeyService, clock: Clock) -> None:
    record = keys.create(KeyChanges(name="x", expiry=Expiry(after=timedelta(hours=1))), ADMIN).record
    assert record.expires_at == clock() + timedelta(hours=1)
    naive = (clock() + timedelta(days=1)).replace(tzinfo=None)  # read in the clock's zone
    later = keys.update(record.id, KeyChanges(expiry=Expiry(at=naive)), ADMIN)
    assert later.expires_at == clock() + timedelta(days=1)
    assert keys.update(record.id, KeyChanges(expiry=Expiry()), ADMIN).expires_at is None  # never
    with pytest.raises(ControlError) as past:
        keys.update(record.id, KeyChanges(expiry=Expiry(at=clock() - timedelta(seconds=1))), ADMIN)
    assert (past.value.status, past.value.field) == (422, "expiresAt")


def test_an_update_changes_only_what_it_asks(keys: KeyService) -> None:
    asked = KeyChanges(
        name="x", scopes=["inference", "admin"], limits={"token_budget": 9, "budget_period": "day"}
    )
    record = keys.create(asked, ADMIN).record
    updated = keys.update(record.id, KeyChanges(limits={"requests_per_minute": 3}), ADMIN)
    assert updated == dataclasses.replace(record, requests_per_minute=3)
    assert keys.update(record.id, KeyChanges(), ADMIN) == updated  # nothing asked: nothing written
    with pytest.raises(ControlError) as missing:
        keys.update("000000000bad", KeyChanges(name="y"), ADMIN)
    assert missing.value.status == 404


def test_a_revoked_key_is_refused_and_stays_revoked_from_the_first_time(
    keys: KeyService, ring: KeyRing, clock: Clock
) -> None:
    issued = keys.create(KeyChanges(name="x"), ADMIN)
    revoked = keys.revoke(issued.record.id, ADMIN)
    assert revoked.revoked_at == clock()
    with pytest.raises(AuthError, match="revoked"):
        ring.authenticate(bearer(issued.secret), clock())
    clock.advance(60)
    assert keys.revoke(issued.record.id, ADMIN).revoked_at == revoked.revoked_at
    with pytest.raises(ControlError) as rotate:
        keys.rotate(issued.record.id, timedelta(0), ADMIN)
    assert rotate.value.status == 400


def test_rotation_gives_a_new_secret_and_the_old_one_an_overlap(
    keys: KeyService, ring: KeyRing, clock: Clock
) -> None:
    asked = KeyChanges(name="x", limits={"token_budget": 50}, expiry=Expiry(after=timedelta(minutes=30)))
    old = keys.create(asked, ADMIN)
    new = keys.rotate(old.record.id, timedelta(hours=1), ADMIN)
    assert new.record.id != old.record.id and new.secret != old.secret
    assert (new.record.name, new.record.token_budget) == ("x", 50)
    assert new.record.expires_at == old.record.expires_at and new.record.rotated_to is None
    before = keys.get(old.record.id)
    assert before.rotated_to == new.record.id
    assert before.expires_at == clock() + timedelta(minutes=30)  # its own expiry comes before the hour
    assert ring.authenticate(bearer(new.secret), clock()).key_id == new.record.id
    assert ring.authenticate(bearer(old.secret), clock()).key_id == old.record.id  # still, for now
    clock.advance(31 * 60)
    with pytest.raises(AuthError, match="expired"):
        ring.authenticate(bearer(old.secret), clock())


def test_usage_sums_the_keys_requests_and_its_budget_period(
    keys: KeyService, store: Store, clock: Clock
) -> None:
    record = keys.create(KeyChanges(name="x", limits={"budget_period": "day"}), ADMIN).record

    def usage(at_hours_ago: float, prompt: int, completion: int, endpoint: str = "chat") -> UsageRecord:
        at = clock() - timedelta(hours=at_hours_ago)
        return UsageRecord(f"r{at_hours_ago}{endpoint}", record.id, "default", endpoint, endpoint, None, None,
                           "/v1/chat/completions", 200, prompt, completion, 5.0, 1.0, at)  # fmt: skip

    store.usage.add([usage(30, 100, 100), usage(1, 3, 4), usage(2, 5, 6, "embed")])
    seen = keys.usage(record.id)
    assert (seen.requests, seen.prompt_tokens, seen.completion_tokens) == (3, 108, 110)
    assert {r["name"] for r in seen.by_endpoint} == {"chat", "embed"}
    assert seen.period_start == clock().replace(hour=0)
    assert seen.used_this_period == 3 + 4 + 5 + 6  # not yesterday's


def test_the_ring_learns_a_change_only_once_it_is_committed(
    keys: KeyService, ring: KeyRing, store: Store, clock: Clock
) -> None:
    """An admin call whose audit record fails is rolled back: the gateway must not keep its key."""
    with pytest.raises(RuntimeError), store.transaction():
        lost = keys.create(KeyChanges(name="lost"), ADMIN)
        raise RuntimeError("the audit record could not be written")
    with pytest.raises(AuthError):
        ring.authenticate(bearer(lost.secret), clock())
    assert keys.list() == []
    with store.transaction():
        kept = keys.create(KeyChanges(name="kept"), ADMIN)
        with pytest.raises(AuthError):  # not before the commit either
            ring.authenticate(bearer(kept.secret), clock())
    assert ring.authenticate(bearer(kept.secret), clock()).key_id == kept.record.id
