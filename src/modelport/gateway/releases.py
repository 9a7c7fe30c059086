"""What one request holds until it ends, released once."""

from __future__ import annotations

from collections.abc import Callable


class Releases:
    """The places a request took (its endpoint's concurrency slot, its place among the requests
    held while the endpoint starts, a replica's in-flight count), released together when it
    ends, or when an attempt on one endpoint failed and its fallback is tried. Each is released
    exactly once, however many ways out call `release_all`."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: list[Callable[[], None]] = []

    def push(self, release: Callable[[], None]) -> None:
        self._held.append(release)

    def release_all(self) -> None:
        held, self._held = self._held, []
        for release in held:
            release()
