"""The engines' own load, read from each ready replica's Prometheus `/metrics` every tick.

The gateway knows what it has sent; only the engine knows how full its KV cache is and how
many requests wait inside it. Both modelport's engine (`modelport:` names) and vLLM's
(`vllm:` names) are understood. A replica that does not answer within the timeout is simply
missing from the result: the policy then falls back to the gateway's counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

_NAMES = {
    "running": ("modelport:num_requests_running", "vllm:num_requests_running"),
    "waiting": ("modelport:num_requests_waiting", "vllm:num_requests_waiting"),
    "kv_usage": ("modelport:kv_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}


@dataclass(frozen=True)
class EngineLoad:
    running: float
    waiting: float
    kv_usage: float | None  # 0..1


def parse_engine_metrics(text: str) -> EngineLoad | None:
    """The load in one engine's metrics page (summed over model names), or None if it has none."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for key, names in _NAMES.items():
            if family.name in names:
                found[key] = found.get(key, 0.0) + sum(sample.value for sample in family.samples)
    if not found:
        return None
    return EngineLoad(found.get("running", 0.0), found.get("waiting", 0.0), found.get("kv_usage"))


def mean_kv_usage(loads: Iterable[EngineLoad]) -> float | None:
    values = [load.kv_usage for load in loads if load.kv_usage is not None]
    return sum(values) / len(values) if values else None


class EngineScraper:
    def __init__(self, timeout_s: float = 0.5) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_s)
        # the last page read from each address, with when: /metrics re-exports them, labelled
        self.pages: dict[str, tuple[float, str]] = {}

    async def scrape(self, addresses: Iterable[str]) -> dict[str, EngineLoad]:
        unique = sorted(set(addresses))
        for gone in set(self.pages) - set(unique):
            del self.pages[gone]
        loads = await asyncio.gather(*(self._one(address) for address in unique))
        return {address: load for address, load in zip(unique, loads, strict=True) if load is not None}

    async def _one(self, address: str) -> EngineLoad | None:
        try:
            response = await self._client.get(f"{address}/metrics")
            if response.status_code != 200:
                return None
            self.pages[address] = (time.monotonic(), response.text)
            return parse_engine_metrics(response.text)
        except (httpx.HTTPError, ValueError):
            return None

    async def close(self) -> None:
        await self._client.aclose()
