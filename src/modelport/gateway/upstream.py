"""The gateway's HTTP client to replicas (aiohttp: its C parser and pool keep the relay cheap).

Only what the proxy needs: send a request and get the status and headers, then read the body
chunk by chunk as it arrives (never coalesced), or whole. Errors come as four kinds:
`NotAnswered` (no connection could be made: the request never reached the replica, so it is
safe to send it to another), `Dropped` (the replica took the request and closed the connection
before answering, twice: once may be a stale pooled connection, so it is tried once more on a
new one; it may have crashed on this very request, so it is never replayed elsewhere),
`NoFirstByte` (no answer began within the first-byte deadline) and `BrokenAnswer` (the
connection failed, or went quiet for longer than the idle deadline, while the body was coming).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import aiohttp
from multidict import CIMultiDict

# Below the 5 s keep-alive of uvicorn (the builtin engine, vLLM, llama-cpp-python): a pooled
# connection is dropped here before the server closes it, so a request is never written onto a
# connection the server is closing (which would look like a replica that dropped it).
KEEPALIVE_S = 3.0
DEFAULT_FIRST_BYTE_S = 300.0
DEFAULT_IDLE_S = 120.0


class NotAnswered(Exception):
    pass


class Dropped(Exception):
    pass


class NoFirstByte(Exception):
    pass


class _Closed(Exception):
    """The replica closed the connection after the request was written: once, it may be a stale
    pooled connection."""


class BrokenAnswer(Exception):
    pass


class _Silent(Exception):
    """Set on the body's reader by the idle watchdog."""


class UpstreamResponse:
    def __init__(self, response: aiohttp.ClientResponse, idle_s: float = DEFAULT_IDLE_S) -> None:
        self._response = response
        self.idle_s = idle_s
        self.status_code = response.status
        self.headers: dict[str, str] = {k.lower(): v for k, v in response.headers.items()}
        self._waiting_since: float | None = None  # while a read of the body is pending
        self._watchdog: asyncio.TimerHandle | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. The idle deadline counts only time spent waiting on the
        replica (not a slow client), kept by one timer per answer rather than one per chunk: a
        timeout scope around each read cost ~5-10 µs a token."""
        loop = asyncio.get_running_loop()
        content = self._response.content
        self._watchdog = loop.call_at(loop.time() + self.idle_s, self._watch, loop)
        try:
            while True:
                self._waiting_since = loop.time()
                chunk = await content.readany()
                self._waiting_since = None
                if not chunk:
                    return
                yield chunk
        except _Silent as exc:
            raise BrokenAnswer(f"no data for {self.idle_s:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise BrokenAnswer(type(exc).__name__) from exc
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        since = self._waiting_since
        now = loop.time()
        if since is not None and now - since >= self.idle_s * 0.999:  # the loop's clock is coarse
            self._response.content.set_exception(_Silent())  # wakes the pending read
            return
        self._watchdog = loop.call_at((since if since is not None else now) + self.idle_s, self._watch, loop)

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout(self.idle_s):
                return await self._response.read()
        except TimeoutError as exc:
            raise BrokenAnswer(f"no whole answer within {self.idle_s:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise BrokenAnswer(type(exc).__name__) from exc

    async def close(self) -> None:
        """Closing before the body ended drops the connection, which aborts the engine's work."""
        self._response.close()


class Upstream:
    def __init__(
        self,
        connect_timeout_s: float = 5.0,
        first_byte_s: float = DEFAULT_FIRST_BYTE_S,
        idle_s: float = DEFAULT_IDLE_S,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.first_byte_s = first_byte_s  # from sending the request to the answer's headers
        self.idle_s = idle_s  # the longest silence while the body comes
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    def _client(self, fresh: bool = False) -> aiohttp.ClientSession:
        """The pooled session, or (`fresh`) one whose every request opens its own connection."""
        session = self._fresh if fresh else self._session
        if session is None:  # created lazily: it needs the running event loop
            connector = (
                aiohttp.TCPConnector(limit=0, force_close=True)
                if fresh
                else aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True, keepalive_timeout=KEEPALIVE_S)
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
            if fresh:
                self._fresh = session
            else:
                self._session = session
        return session

    async def send(
        self, method: str, url: str, query: str, body: bytes, headers: Sequence[tuple[str, str]]
    ) -> UpstreamResponse:
        """A connection the replica closes before answering is tried once more, to the same replica
        on a new connection: a pooled connection the server was closing as it was reused looks
        just like a replica that died on the request. If that fails too, `Dropped` (and the
        request goes to no other replica)."""
        target = f"{url}?{query}" if query else url
        try:
            return await self._send(method, target, body, headers, fresh=False)
        except _Closed:
            pass
        try:
            return await self._send(method, target, body, headers, fresh=True)
        except (_Closed, NotAnswered) as exc:  # NotAnswered now: it died on the first attempt
            raise Dropped(str(exc)) from exc

    async def _send(
        self, method: str, target: str, body: bytes, headers: Sequence[tuple[str, str]], fresh: bool
    ) -> UpstreamResponse:
        try:
            async with asyncio.timeout(self.first_byte_s):
                response = await self._client(fresh).request(
                    method, target, data=body or None, headers=CIMultiDict(headers), allow_redirects=False
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotAnswered(type(exc).__name__) from exc  # refused, unreachable: it never got it
        except TimeoutError as exc:
            raise NoFirstByte(f"no answer within {self.first_byte_s:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Closed(type(exc).__name__) from exc
        return UpstreamResponse(response, self.idle_s)

    async def close(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()
