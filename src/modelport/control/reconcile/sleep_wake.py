"""Sleep as a scale-to-zero level: standby replicas of a sleep-mode engine sleep, and wake to serve.

An endpoint with `image.vllm.sleepMode` and `warmStandby` ≥ 1 keeps that many loaded replicas
beyond its target (control/reconcile/plan.py); here those standbys are put to sleep, which frees the
GPU while the process and its weights (in host memory) stay. When the target grows again, at
zero included, a sleeping standby is woken and is routed once `/wake_up` has answered: the held
request waits for a wake-up (about a second) instead of a cold start.

State is per replica and in memory. A replica seen for the first time (just started, or
adopted by a restarted control plane, which does not know whether it sleeps) is asked
`/is_sleeping` once before it is routed, and woken if it sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)


class Rest(StrEnum):
    PROBING = "probing"  # first sight: asking whether it sleeps
    FALLING_ASLEEP = "falling-asleep"
    ASLEEP = "asleep"
    WAKING = "waking"
    UNABLE = "unable"  # sleep failed once: kept awake as a plain standby


SleepCall = Callable[[str], Awaitable[None]]
ProbeCall = Callable[[str], Awaitable[bool]]


@dataclass
class Sleeper:
    sleep: SleepCall
    wake: SleepCall
    probe: ProbeCall
    on_change: Callable[[], None]  # a tick should look again (a sleep or wake finished)
    clock: Callable[[], float] = time.monotonic
    states: dict[str, Rest] = field(default_factory=dict)
    known_awake: set[str] = field(default_factory=set)  # probed (or woken) and awake since
    wake_seconds: list[float] = field(default_factory=list)  # measured wake-ups, newest last
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def routable(self, replica_id: str, address: str) -> bool:
        """The replica should serve: True once it is awake (a wake starts here if it sleeps)."""
        state = self.states.get(replica_id)
        if state is None and replica_id not in self.known_awake:
            self.states[replica_id] = state = Rest.PROBING
            self._spawn(self._probe(replica_id, address))
        if state is None or state == Rest.UNABLE:
            return True
        if state == Rest.ASLEEP:
            self.states[replica_id] = Rest.WAKING
            self._spawn(self._wake(replica_id, address))
        return False

    def rest(self, replica_id: str, address: str) -> None:
        """The replica is a standby: put it to sleep unless it is, or cannot be."""
        if replica_id not in self.states:
            self.known_awake.discard(replica_id)
            self.states[replica_id] = Rest.FALLING_ASLEEP
            self._spawn(self._sleep(replica_id, address))

    def forget(self, live: set[str]) -> None:
        for replica_id in set(self.states) - live:
            del self.states[replica_id]
        self.known_awake &= live

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self, replica_id: str, address: str) -> None:
        try:
            asleep = await self.probe(address)
        except Exception as exc:  # not answering yet, or no sleep routes: treat as awake
            log.info("replica %s: could not ask whether it sleeps (%s); taken as awake", replica_id[:8], exc)
            asleep = False
        if self.states.get(replica_id) == Rest.PROBING:
            if asleep:
                self.states[replica_id] = Rest.ASLEEP
            else:
                del self.states[replica_id]
                self.known_awake.add(replica_id)
        self.on_change()

    async def _sleep(self, replica_id: str, address: str) -> None:
        try:
            await self.sleep(address)
        except Exception as exc:  # any failure: the replica stays a loaded, awake standby
            log.warning("replica %s could not be put to sleep, kept awake: %s", replica_id[:8], exc)
            if replica_id in self.states:
                self.states[replica_id] = Rest.UNABLE
        else:
            if replica_id in self.states:
                self.states[replica_id] = Rest.ASLEEP
                log.info("replica %s is asleep", replica_id[:8])
        self.on_change()

    async def _wake(self, replica_id: str, address: str) -> None:
        started = self.clock()
        try:
            await self.wake(address)
        except Exception as exc:
            log.warning("replica %s did not wake (%s); retrying on the next tick", replica_id[:8], exc)
            if replica_id in self.states:
                self.states[replica_id] = Rest.ASLEEP
        else:
            took = self.clock() - started
            self.wake_seconds = [*self.wake_seconds[-99:], took]
            log.info("replica %s woke in %.2f s", replica_id[:8], took)
            if self.states.pop(replica_id, None) is not None:
                self.known_awake.add(replica_id)
        self.on_change()
