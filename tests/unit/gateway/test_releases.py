"""What a request holds is released once, however many ways out release it (gateway/releases.py)."""

from __future__ import annotations

from modelport.gateway.releases import Releases


def test_each_place_is_released_once_in_the_order_taken() -> None:
    released: list[str] = []
    releases = Releases()
    releases.push(lambda: released.append("slot"))
    releases.push(lambda: released.append("replica"))
    releases.release_all()
    releases.release_all()
    assert released == ["slot", "replica"]


def test_places_taken_after_a_release_are_released_by_the_next() -> None:
    """A failed first endpoint gives its places back before its fallback takes its own."""
    released: list[str] = []
    releases = Releases()
    releases.push(lambda: released.append("first"))
    releases.release_all()
    releases.push(lambda: released.append("fallback"))
    releases.release_all()
    assert released == ["first", "fallback"]
