"""The planner's answers, checked against arithmetic done by hand from the published numbers.

Llama-3.1-8B in bf16: weights 16,060,522,496 B; KV 131,072 B/token, so 1,073,741,824 B for an
8192-token sequence. vLLM overhead on one GPU: 1.5 GiB fixed (1,610,612,736) + activations
8192 × (4 × 4096 + 3 × 14336) × 2 = 973,078,528 + logits 2 × 256 × 128256 × 4 = 262,668,288,
that is 2,846,359,552 B. Weights + overhead = 18,906,882,048 B.
"""

from __future__ import annotations

import json

import pytest

from modelport.models.hardware import HardwareOption, catalog, find_option, local_cpu_option
from modelport.models.inspect import ModelInfo, info_from_config
from modelport.models.planner import PlanRequest, check_fit, plan, plan_to_dict
from tests.unit.models.public_models import MODELS

BY_NAME = {m.name.split("/")[1]: m for m in MODELS}
LLAMA_8B = info_from_config(BY_NAME["Llama-3.1-8B"].config)
WEIGHTS_8B = 16_060_522_496
OVERHEAD_8B = 2_846_359_552
PER_SEQ_8K = 1_073_741_824
LOCAL_RAM = 32 * 2**30  # a fixed machine, so the answers do not depend on where the test runs
CTX_8K = PlanRequest(context=8192)


def _options() -> list[HardwareOption]:
    return catalog(local_memory_bytes=LOCAL_RAM)


def _info(name: str) -> ModelInfo:
    return info_from_config(BY_NAME[name].config)


def test_one_gpu_of_each_kind_for_llama_8b_at_8k() -> None:
    fits = {o.instance_type: check_fit(LLAMA_8B, o, CTX_8K) for o in _options() if o.count == 1}
    # T4: 0.9 × 15360 MiB = 14.5 GB usable < 16.06 GB of weights alone
    assert not fits["nvidia-t4"].fits
    assert fits["nvidia-t4"].reason.startswith("weights 16.1 GB + overhead 2.8 GB > 14.5 GB usable")
    # L4: int(0.9 × 23034 MiB) = 21,737,609,625 − 18,906,882,048 = 2,830,727,577 → 2.6 sequences
    assert fits["nvidia-l4"].memory.kv_budget == 2_830_727_577
    assert fits["nvidia-l4"].max_sequences == 2
    # A100 80GB: int(0.9 × 81920 MiB) = 77,309,411,328 − 18,906,882,048 = 58,402,529,280 → 54.4
    assert fits["nvidia-a100"].max_sequences == 54
    assert fits["nvidia-a10g"].memory.kv_budget == 2_825_065_267
    expected_fit = {
        "nvidia-t4": False,
        "nvidia-l4": True,
        "nvidia-a10g": True,  # 23028 MiB: 2,825,065,267 B of KV, 2 sequences
        "nvidia-l40s": True,
        "nvidia-a100-40gb": True,
        "nvidia-a100": True,
        "nvidia-h100": True,
        "nvidia-h200": True,
        "nvidia-b200": True,
        "nvidia-rtx-pro-6000": True,
        "amd-mi300x": True,
        "local": True,  # 0.9 × 32 GiB = 30.9 GB > 16.06 GB + the builtin engine's ~0.9 GB
    }
    assert {k: f.fits for k, f in fits.items()} == expected_fit


def test_smallest_tensor_parallel_size_that_fits_is_picked() -> None:
    result = plan(LLAMA_8B, CTX_8K, _options())
    rows = {r.option.instance_type: r for r in result.rows}
    # T4 × 2: 8.03 GB weights + 2.49 GB overhead (activations split over 2) < 14.5 GB: fits
    assert rows["nvidia-t4"].tensor_parallel == 2
    assert rows["nvidia-t4"].smaller == "1×: needs 18.9 GB > 14.5 GB"
    assert rows["nvidia-l4"].tensor_parallel == 1


def test_tensor_parallel_must_divide_the_heads() -> None:
    qwen = _info("Qwen2.5-7B")  # 28 attention heads, 4 KV heads
    fit = check_fit(qwen, find_option("nvidia-h100", "x8"), CTX_8K)
    assert not fit.fits and fit.reason == "28 attention heads do not split over 8 GPUs"
    assert check_fit(qwen, find_option("nvidia-h100", "x4"), CTX_8K).fits  # 28 / 4 and 4 / 4


def test_concurrency_is_kv_budget_over_bytes_per_sequence() -> None:
    h100 = find_option("nvidia-h100", "x1")
    fit = check_fit(LLAMA_8B, h100, PlanRequest(context=8192, concurrency=60))
    budget = int(81559 * 2**20 * 0.9) - WEIGHTS_8B - OVERHEAD_8B
    assert fit.memory.kv_budget == budget
    assert fit.max_sequences == budget // PER_SEQ_8K == 54
    assert fit.fits and not fit.meets_concurrency
    assert "fewer than the 60 asked for" in fit.reason
    fp8 = check_fit(LLAMA_8B, h100, PlanRequest(context=8192, concurrency=60, kv_cache_dtype="fp8"))
    assert fp8.max_sequences == budget // (PER_SEQ_8K // 2) == 108 and fp8.meets_concurrency
    # the context scales it the other way: 32k tokens need 4 GiB each
    assert check_fit(LLAMA_8B, h100, PlanRequest(context=32768)).max_sequences == budget // (4 * PER_SEQ_8K)


def test_sliding_window_layers_need_only_their_window() -> None:
    gemma = _info("gemma-2-9b")
    fit = check_fit(gemma, find_option("nvidia-l40s", "x1"), CTX_8K)
    assert fit.memory.kv_per_sequence == 21 * 8192 * 8192 + 21 * 4096 * 8192  # 42 layers, half slide


def test_cheapest_that_meets_the_concurrency() -> None:
    request = PlanRequest(context=8192, concurrency=16)
    result = plan(LLAMA_8B, request, _options())
    # at the default prices: A100 40GB × 1 ($1.50/h) holds 18 sequences; the next cheapest that
    # serves 16 is 2 × L4 ($1.60/h, 20 sequences); T4 × 2 ($1.00) holds only 7, local CPU 13
    assert result.cheapest is not None
    assert (result.cheapest.option.instance_type, result.cheapest.option.count) == ("nvidia-a100-40gb", 1)
    assert result.cheapest.max_sequences == 18
    cheap_l40s = catalog({"nvidia-l40s": 0.10}, local_memory_bytes=LOCAL_RAM)
    cheapest = plan(LLAMA_8B, request, cheap_l40s).cheapest
    assert cheapest is not None and cheapest.option.label == "1× L40S 48GB"


def test_no_option_serves_an_impossible_request() -> None:
    result = plan(_info("Llama-3.1-70B"), PlanRequest(context=131072, concurrency=100), _options())
    assert result.cheapest is None


def test_vllm_flags() -> None:
    fit = check_fit(LLAMA_8B, find_option("nvidia-h100", "x1"), CTX_8K)
    assert fit.vllm_flags == [
        "--max-model-len",
        "8192",
        "--gpu-memory-utilization",
        "0.9",
        "--tensor-parallel-size",
        "1",
        "--kv-cache-dtype",
        "auto",
    ]
    t4 = check_fit(LLAMA_8B, find_option("nvidia-t4", "x2"), CTX_8K)
    assert t4.vllm_flags[-2:] == ["--dtype", "float16"]  # Turing has no bf16
    fp8 = check_fit(LLAMA_8B, find_option("nvidia-l4", "x1"), PlanRequest(context=8192, quantization="fp8"))
    assert fp8.vllm_flags[8:10] == ["--quantization", "fp8"]
    assert fp8.memory.weights == LLAMA_8B.parameters.linear + 2 * (
        LLAMA_8B.parameters.embedding + LLAMA_8B.parameters.lm_head + LLAMA_8B.parameters.vector
    )
    many = check_fit(LLAMA_8B, find_option("nvidia-b200", "x1"), PlanRequest(context=1024, concurrency=300))
    assert many.vllm_flags[-2:] == ["--max-num-seqs", "300"]


def test_formats_the_hardware_or_engine_cannot_run() -> None:
    fp8_on_t4 = check_fit(
        LLAMA_8B, find_option("nvidia-t4", "x4"), PlanRequest(context=8192, quantization="fp8")
    )
    assert not fp8_on_t4.fits and "no FP8 kernels for T4" in fp8_on_t4.reason
    awq = check_fit(LLAMA_8B, find_option("nvidia-l4", "x1"), PlanRequest(context=8192, quantization="awq"))
    assert awq.fits and awq.vllm_flags[8:] == [] and any("needs an AWQ checkpoint" in n for n in awq.notes)
    local = local_cpu_option(memory_bytes=LOCAL_RAM)
    assert (
        "bf16/fp16/fp32" in check_fit(LLAMA_8B, local, PlanRequest(quantization="awq", context=8192)).reason
    )
    lite = check_fit(_info("DeepSeek-V2-Lite"), local, PlanRequest(context=4096))
    assert not lite.fits and lite.reason == "the builtin CPU engine has no MLA attention"


def test_builtin_flags() -> None:
    l40s = check_fit(LLAMA_8B, find_option("nvidia-l40s", "x1"), CTX_8K)
    assert l40s.builtin_flags == [
        "--max-model-len",
        "8192",
        "--kv-cache-memory",
        f"{l40s.memory.kv_budget}B",
        "--dtype",
        "bfloat16",
    ]
    assert check_fit(LLAMA_8B, find_option("nvidia-l40s", "x2"), CTX_8K).builtin_flags == []
    local = local_cpu_option(memory_bytes=LOCAL_RAM)
    cpu = check_fit(LLAMA_8B, local, PlanRequest(context=8192, concurrency=3))
    # on the CPU the pool is sized for the concurrency asked, not the whole RAM
    assert cpu.builtin_flags[3] == f"{3 * PER_SEQ_8K}B"
    assert cpu.vllm_flags == []
    gemma = check_fit(_info("gemma-2-9b"), local, CTX_8K)  # the builtin engine stops at the window
    assert gemma.context == 4096 and gemma.builtin_flags[:2] == ["--max-model-len", "4096"]


def test_throughput_and_cost() -> None:
    request = PlanRequest(context=8192, concurrency=16)
    h100 = check_fit(LLAMA_8B, find_option("nvidia-h100", "x1"), request)
    a100 = check_fit(LLAMA_8B, find_option("nvidia-a100", "x1"), request)
    assert h100.throughput is not None and a100.throughput is not None
    assert h100.throughput.batch == 16 and h100.throughput.bound == "memory"
    assert h100.throughput.tokens_per_s > a100.throughput.tokens_per_s
    t = h100.throughput
    assert t.cost_per_million_tokens == pytest.approx(4.50 / (t.tokens_per_s * 3600) * 1e6)
    # memory-bound step: (weights − input embedding + 16 × KV of half the context) / (3350 GB/s × 0.6)
    step = (WEIGHTS_8B - 2 * 128256 * 4096 + 16 * PER_SEQ_8K // 2) / (3350e9 * 0.6)
    assert t.tokens_per_s == pytest.approx(16 / step)


def test_context_defaults_to_the_model_maximum_and_is_capped_there() -> None:
    assert plan(LLAMA_8B, PlanRequest(), _options()).context == 131072
    capped = plan(_info("gemma-2-9b"), PlanRequest(context=100_000), _options())
    assert capped.context == 8192 and any("capped" in n for n in capped.notes)


@pytest.mark.parametrize(
    "kwargs",
    [{"context": 0}, {"concurrency": 0}, {"kv_cache_dtype": "int4"}, {"quantization": "int3"}],
)
def test_bad_requests_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PlanRequest(**kwargs)  # type: ignore[arg-type]


def test_plan_as_json() -> None:
    result = plan(_info("Mixtral-8x7B-v0.1"), PlanRequest(context=4096, concurrency=8), _options())
    data = json.loads(json.dumps(plan_to_dict(result)))
    assert data["model"]["experts"] == 8 and data["weights_bytes"] == 93_405_585_408
    assert len(data["rows"]) == 12 and len(data["evaluated"]) == 45
    assert data["cheapest"]["meets_concurrency"] is True
