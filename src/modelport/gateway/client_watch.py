"""Noticing a client that leaves while its request waits (held, queued, or for the first byte)."""

from __future__ import annotations

import asyncio
from types import TracebackType

from starlette.requests import Request

from modelport.gateway.errors import ClientGone


class ClientWatch:
    """`async with ClientWatch(request):` cancels the block if the client disconnects first, and
    the block then raises `ClientGone`: the request's places are released and its upstream
    connection closed, which aborts the engine's work. Once the answer begins, the relay notices
    a client that leaves. One watcher task cancels the request's own task (cheaper than running
    the block as a task of its own and waiting on both)."""

    __slots__ = ("_left", "_request", "_task", "_watcher")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._left = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watcher: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        await disconnected(self._request)
        self._left = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        watcher, self._watcher = self._watcher, None  # (the watcher refers to this: no cycle left)
        assert watcher is not None
        watcher.cancel()  # before the response listens for the disconnect itself
        if kind is None:
            if self._left:  # the client left as the block was ending: its cancel came too late
                self._task.uncancel()
                raise ClientGone
        elif issubclass(kind, asyncio.CancelledError) and self._left:
            self._task.uncancel()  # (a cancel from outside, at shutdown, is not the client's doing)
            raise ClientGone from None


async def disconnected(request: Request) -> None:
    """Returns when the client has closed its connection (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
