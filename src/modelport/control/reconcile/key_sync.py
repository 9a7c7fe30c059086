"""The gateway's key ring kept equal to the store: a background task of the control plane.

The key API puts each change into the ring as it commits; this re-reads every key twice a
second for what it cannot see: a change made by another process on the same store. Expiry needs
no sync: the ring checks it on each request.
"""

from __future__ import annotations

import asyncio
import contextlib

from modelport.auth.api_keys import KeyRing
from modelport.store.repository import Store


async def sync_keys(store: Store, ring: KeyRing, interval_s: float = 0.5) -> None:
    while True:
        with contextlib.suppress(Exception):  # the store may be away for a while: keep what we have
            ring.replace(await asyncio.to_thread(store.keys.list))
        await asyncio.sleep(interval_s)
