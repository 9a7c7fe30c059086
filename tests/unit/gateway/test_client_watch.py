"""A client that leaves while its request waits cancels the wait (gateway/client_watch.py)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from modelport.gateway.client_watch import ClientWatch
from modelport.gateway.errors import ClientGone

from .neighbours import request


def client(leaves_after_s: float | None) -> Any:
    """A request whose client disconnects after `leaves_after_s` (None: stays)."""

    async def receive() -> dict[str, Any]:
        if leaves_after_s is None:
            await asyncio.Event().wait()
        await asyncio.sleep(leaves_after_s or 0)
        return {"type": "http.disconnect"}

    return request(receive=receive)


def test_a_client_that_leaves_cancels_the_wait_and_raises_client_gone() -> None:
    async def go() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ClientGone):
            async with ClientWatch(client(0.05)):
                await asyncio.sleep(30)  # a hold, a queue, a first byte that never comes
        return loop.time() - started

    assert asyncio.run(go()) < 5


def test_a_client_that_stays_changes_nothing_and_leaves_no_task_behind() -> None:
    async def go() -> int:
        async with ClientWatch(client(None)):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # the watcher's cancellation runs
        return len(asyncio.all_tasks()) - 1  # less this one

    assert asyncio.run(go()) == 0


def test_a_cancel_from_outside_is_not_the_clients_doing() -> None:
    async def go() -> None:
        async def wait() -> None:
            async with ClientWatch(client(None)):
                await asyncio.sleep(30)

        task = asyncio.create_task(wait())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_an_error_in_the_block_passes_through() -> None:
    async def go() -> None:
        with pytest.raises(KeyError):
            async with ClientWatch(client(None)):
                raise KeyError("x")

    asyncio.run(go())


def test_the_watch_leaves_no_reference_cycle_to_collect() -> None:
    """Cyclic garbage per request would cost the gateway collector time on every request."""

    async def go() -> None:
        for leaves in (None, 0.0):
            try:
                async with ClientWatch(client(leaves)):
                    await asyncio.sleep(0.01)
            except ClientGone:
                pass
        await asyncio.sleep(0.01)

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        asyncio.run(go())
        gc.collect()
        assert not [o for o in gc.garbage if isinstance(o, ClientWatch)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
