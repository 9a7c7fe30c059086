"""The response that relays a replica's answer, with one cleanup however the exchange ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class RelayedResponse(StreamingResponse):
    """Streams a body to the client and, however it ends (done, client gone, never started),
    runs `on_close` and closes the upstream answer."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        status: int,
        headers: dict[str, str],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(body, status_code=status, headers=headers)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # shielded: after a disconnect this runs in a cancelled scope, and closing the upstream
            # connection is what tells the engine to abort the request
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(RuntimeError):
                        await aclose()
                await self.on_close()
