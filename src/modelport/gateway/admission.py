"""Per-endpoint admission: how many requests are in flight, how many wait, and the cap.

Every request holds a slot of its endpoint from the moment it is admitted until its answer is
fully relayed. With `maxConcurrent` set, requests beyond it wait in arrival order, up to
`maxQueue` of them; one more is refused at once (429) rather than queued without bound.
`outstanding` (in flight + waiting) is what the overflow policy looks at; `pending` (also
counting requests held while the endpoint has no ready replica) and `arrivals` are what the
autoscaler reads.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field


class QueueFull(Exception):
    pass


class HoldFull(Exception):
    pass


def once(action: Callable[[], None]) -> Callable[[], None]:
    """`action`, run by the first call of the returned function only (releases are idempotent:
    every way a request can end calls them)."""
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            action()

    return run


@dataclass
class Admission:
    in_flight: int = 0
    waiters: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)
    held: int = 0  # requests waiting for the endpoint to have a ready replica
    arrivals: int = 0  # requests that ever arrived for this endpoint

    @property
    def outstanding(self) -> int:
        return self.in_flight + len(self.waiters)

    @property
    def pending(self) -> int:
        return self.in_flight + len(self.waiters) + self.held

    async def enter(self, max_concurrent: int | None, max_queue: int) -> Callable[[], None]:
        """Wait for a slot (or raise `QueueFull`); call the returned function once when done."""
        if max_concurrent is not None and (self.in_flight >= max_concurrent or self.waiters):
            if len(self.waiters) >= max_queue:
                raise QueueFull
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter  # the slot is handed over by the leaving request (in_flight unchanged)
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._leave()  # the slot reached us as we were cancelled: pass it on
                elif waiter in self.waiters:
                    self.waiters.remove(waiter)
                raise
        else:
            self.in_flight += 1
        return once(self._leave)

    def take_hold(self, max_held: int) -> Callable[[], None]:
        """Count a request as held (pending load for the autoscaler) until the returned function
        is called; `HoldFull` past `max_held`, so a starting endpoint's wait list is bounded."""
        if self.held >= max_held:
            raise HoldFull
        self.held += 1
        return once(self._unhold)

    def _unhold(self) -> None:
        self.held -= 1

    def _leave(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1


@dataclass
class AdmissionTable:
    endpoints: dict[tuple[str, str], Admission] = field(default_factory=dict)

    def of(self, namespace: str, name: str) -> Admission:
        admission = self.endpoints.get((namespace, name))
        if admission is None:
            admission = self.endpoints[(namespace, name)] = Admission()
        return admission
