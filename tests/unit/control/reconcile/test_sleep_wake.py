"""The sleep-mode standby states, with recorded calls in place of vLLM's routes."""

from __future__ import annotations

import asyncio

from modelport.control.reconcile.sleep_wake import Rest, Sleeper


class Engine:
    """What the sleeper asked of each replica address, and how the engine answers."""

    def __init__(self, asleep: bool = False, fail_sleep: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.asleep = asleep
        self.fail_sleep = fail_sleep
        self.changes = 0

    async def sleep(self, address: str) -> None:
        self.calls.append(("sleep", address))
        if self.fail_sleep:
            raise RuntimeError("sleep mode is not enabled")
        self.asleep = True

    async def wake(self, address: str) -> None:
        self.calls.append(("wake", address))
        self.asleep = False

    async def probe(self, address: str) -> bool:
        self.calls.append(("probe", address))
        return self.asleep

    def sleeper(self) -> Sleeper:
        def changed() -> None:
            self.changes += 1

        return Sleeper(self.sleep, self.wake, self.probe, changed)


async def settle(sleeper: Sleeper) -> None:
    await sleeper.close()


def test_a_new_replica_is_probed_once_then_routed() -> None:
    async def scenario() -> None:
        engine = Engine()
        sleeper = engine.sleeper()
        assert not sleeper.routable("r1", "http://a")  # asked first
        await settle(sleeper)
        assert sleeper.routable("r1", "http://a") and sleeper.routable("r1", "http://a")
        assert engine.calls == [("probe", "http://a")]

    asyncio.run(scenario())


def test_a_standby_sleeps_and_wakes_when_it_must_serve() -> None:
    async def scenario() -> None:
        engine = Engine()
        sleeper = engine.sleeper()
        sleeper.known_awake.add("r1")
        sleeper.rest("r1", "http://a")
        sleeper.rest("r1", "http://a")  # one sleep call, however many ticks see it idle
        await settle(sleeper)
        assert sleeper.states["r1"] == Rest.ASLEEP and engine.asleep
        assert not sleeper.routable("r1", "http://a")  # the wake starts; not routed until it answers
        assert sleeper.states["r1"] == Rest.WAKING
        await settle(sleeper)
        assert sleeper.routable("r1", "http://a") and not engine.asleep
        assert engine.calls == [("sleep", "http://a"), ("wake", "http://a")]
        assert len(sleeper.wake_seconds) == 1 and engine.changes == 2

    asyncio.run(scenario())


def test_a_replica_found_asleep_after_a_restart_is_woken_before_it_is_routed() -> None:
    async def scenario() -> None:
        engine = Engine(asleep=True)
        sleeper = engine.sleeper()
        assert not sleeper.routable("r1", "http://a")
        await settle(sleeper)
        assert not sleeper.routable("r1", "http://a")
        await settle(sleeper)
        assert sleeper.routable("r1", "http://a")
        assert [c for c, _ in engine.calls] == ["probe", "wake"]

    asyncio.run(scenario())


def test_a_replica_that_cannot_sleep_stays_an_awake_standby() -> None:
    async def scenario() -> None:
        engine = Engine(fail_sleep=True)
        sleeper = engine.sleeper()
        sleeper.rest("r1", "http://a")
        await settle(sleeper)
        sleeper.rest("r1", "http://a")  # not tried again
        assert sleeper.states["r1"] == Rest.UNABLE
        assert sleeper.routable("r1", "http://a")
        assert engine.calls == [("sleep", "http://a")]

    asyncio.run(scenario())


def test_gone_replicas_are_forgotten() -> None:
    async def scenario() -> None:
        engine = Engine()
        sleeper = engine.sleeper()
        sleeper.rest("r1", "http://a")
        sleeper.rest("r2", "http://b")
        await settle(sleeper)
        sleeper.forget({"r2"})
        assert set(sleeper.states) == {"r2"}

    asyncio.run(scenario())
