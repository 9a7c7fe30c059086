"""The gateway's HTTP client to replicas (aiohttp: its C parser and pool keep the relay cheap).

Only what the proxy needs: send a request and get the status and headers, then read the body
chunk by chunk as it arrives (never coalesced), or whole. Errors come as two kinds:
`NotAnswered` (connection refused, or dropped before a response: safe to retry elsewhere) and
`BrokenAnswer` (the connection failed while the body was coming).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import aiohttp
from multidict import CIMultiDict


class NotAnswered(Exception):
    pass


class BrokenAnswer(Exception):
    pass


class UpstreamResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers: dict[str, str] = {k.lower(): v for k, v in response.headers.items()}

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise BrokenAnswer(type(exc).__name__) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise BrokenAnswer(type(exc).__name__) from exc

    async def close(self) -> None:
        """Closing before the body ended drops the connection, which aborts the engine's work."""
        self._response.close()


class Upstream:
    def __init__(self, connect_timeout_s: float = 5.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: it needs the running event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def send(
        self, method: str, url: str, query: str, body: bytes, headers: Sequence[tuple[str, str]]
    ) -> UpstreamResponse:
        target = f"{url}?{query}" if query else url
        try:
            response = await self._client().request(
                method, target, data=body or None, headers=CIMultiDict(headers), allow_redirects=False
            )
        except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError, OSError) as exc:
            raise NotAnswered(type(exc).__name__) from exc
        return UpstreamResponse(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
