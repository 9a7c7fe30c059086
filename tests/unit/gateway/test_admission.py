"""The per-endpoint concurrency cap: order, bounded queue, and no slot lost to cancellation."""

from __future__ import annotations

import asyncio

import pytest

from modelport.gateway.admission import Admission, QueueFull


def test_cap_queues_in_order_and_refuses_beyond_the_queue() -> None:
    async def run() -> list[int]:
        admission = Admission()
        order: list[int] = []
        first = await admission.enter(1, 2)

        async def later(i: int) -> None:
            leave = await admission.enter(1, 2)
            order.append(i)
            leave()

        tasks = [asyncio.create_task(later(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        assert admission.outstanding == 3
        with pytest.raises(QueueFull):
            await admission.enter(1, 2)
        first()
        await asyncio.gather(*tasks)
        assert admission.outstanding == 0
        return order

    assert asyncio.run(run()) == [1, 2]


def test_a_cancelled_waiter_gives_up_its_place_without_losing_a_slot() -> None:
    async def run() -> None:
        admission = Admission()
        first = await admission.enter(1, 5)
        waiting = asyncio.create_task(admission.enter(1, 5))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        first()
        assert admission.outstanding == 0
        leave = await asyncio.wait_for(admission.enter(1, 5), 1)  # the slot is free again
        leave()
        leave()  # idempotent
        assert admission.in_flight == 0

    asyncio.run(run())


def test_without_a_cap_it_only_counts() -> None:
    async def run() -> None:
        admission = Admission()
        leaves = [await admission.enter(None, 0) for _ in range(100)]
        assert admission.outstanding == 100
        for leave in leaves:
            leave()
        assert admission.outstanding == 0

    asyncio.run(run())
