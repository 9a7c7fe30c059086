"""On this machine, the builtin engine's peak memory is the planner's prediction, within 10 %.

The planner sizes the local CPU option for a ~126 MB float32 Llama (hidden 512, 8 layers) at
2048 tokens × 4 sequences and gives the builtin engine's flags (`--kv-cache-memory 256 MiB`).
`modelport serve` runs with exactly those flags. The CPU pool is calloc'd, so its pages become
resident only when used: the test fills it (5 concurrent 1664-token sequences want more than the
8192 tokens it holds, so the engine uses every block and preempts), then compares the server's
peak resident memory (VmHWM) with the planner's runtime + activations + weights + KV budget.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from modelport.models.demo import LlamaShape, build_llama
from modelport.models.hardware import local_cpu_option
from modelport.models.inspect import inspect_model
from modelport.models.planner import PlanRequest, check_fit
from tests.support.server_process import ServerProcess

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status"),
]

SHAPE = LlamaShape(
    hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=8, intermediate_size=1536, vocab_size=8192
)
PROMPT_TOKENS, OUTPUT_TOKENS, REQUESTS = 1600, 64, 5


def _status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) * 1024
    return values


async def _fill(server: ServerProcess) -> tuple[list[int], float]:
    """Send the requests; return their statuses and the highest KV-pool use seen meanwhile."""
    async with httpx.AsyncClient(timeout=600) as client:

        async def one(i: int) -> int:
            prompt = [100 + (i * 7919 + j * 31) % 1900 for j in range(PROMPT_TOKENS)]
            body = {"model": "m", "prompt": prompt, "max_tokens": OUTPUT_TOKENS, "ignore_eos": True}
            response = await client.post(f"{server.url}/v1/completions", json=body)
            return response.status_code

        tasks = [asyncio.create_task(one(i)) for i in range(REQUESTS)]
        highest = 0.0
        while not all(t.done() for t in tasks):
            highest = max(highest, await asyncio.to_thread(server.metric, "modelport:kv_cache_usage_perc"))
            await asyncio.sleep(0.2)
        return [t.result() for t in tasks], highest


def test_builtin_engine_peak_memory_matches_the_plan(tmp_path: Path) -> None:
    model = build_llama(tmp_path / "m512", SHAPE, dtype="float32")
    fit = check_fit(inspect_model(model), local_cpu_option(), PlanRequest(context=2048, concurrency=4))
    assert fit.fits and fit.builtin_flags[:2] == ["--max-model-len", "2048"]
    kv = int(fit.builtin_flags[3].removesuffix("B"))
    assert kv == 4 * 2048 * (2 * 8 * 8 * 64 * 4) == 256 * 2**20  # 4 sequences × 2048 tokens × 32 KiB
    predicted = fit.memory.weights + fit.memory.overhead + kv
    with ServerProcess(model, "--served-model-name", "m", *fit.builtin_flags) as server:
        assert server.metric("modelport:kv_cache_bytes") == kv
        assert server.metric("modelport:model_weight_bytes") == fit.memory.weights
        idle = _status(server.pid)["VmRSS"]
        statuses, highest_use = asyncio.run(_fill(server))
        peak = _status(server.pid)["VmHWM"]
    assert statuses == [200] * REQUESTS
    assert highest_use >= 0.98, highest_use  # the pool filled (sampled every 0.2 s)
    report = (
        f"predicted {predicted / 2**20:.0f} MiB (weights {fit.memory.weights / 2**20:.0f} + overhead "
        f"{fit.memory.overhead / 2**20:.0f} + KV {kv / 2**20:.0f}); measured peak {peak / 2**20:.0f} MiB "
        f"(idle {idle / 2**20:.0f} MiB, KV pool {highest_use:.0%} used); "
        f"error {(peak - predicted) / predicted:+.1%}"
    )
    print(report)
    assert peak - idle >= 0.9 * kv, f"the pool's pages did not become resident: {report}"
    assert abs(peak - predicted) <= 0.10 * predicted, report
