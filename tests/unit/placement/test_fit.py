"""The control plane's use of the planner: refuse what cannot fit, size what can, never guess.

Models here are header-only folders (tests/support/model_headers.py): the planner reads nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.models.cache import ModelCache
from modelport.models.hardware import find_option, local_cpu_option
from modelport.placement.fit import Deployment, admission_problem, engine_plan, fit_for, planned_args
from tests.support.model_headers import SMALL_LLAMA, llama_tensors, write_hub_folder
from tests.unit.models.public_models import MODELS

LLAMA_8B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.1-8B")


@pytest.fixture(scope="module")
def llama_8b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("m") / "Llama-3.1-8B"
    write_hub_folder(folder, LLAMA_8B.config, llama_tensors(LLAMA_8B.config), shards=4)
    return folder


def deployment(
    model: Path | str, *args: str, instance: str = "local", concurrent: int | None = None
) -> Deployment:
    option = local_cpu_option(memory_bytes=24 * 2**30) if instance == "local" else find_option(instance, "x1")
    return Deployment(str(model), None, args, option, concurrent)


def test_a_model_too_big_for_the_instance_is_refused_with_the_reason(llama_8b: Path, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    problem = admission_problem(deployment(llama_8b, instance="nvidia-t4"), cache)
    assert problem is not None
    assert problem.startswith(f"{llama_8b} does not fit 1× T4 16GB: ")
    assert "16.1 GB" in problem and f"`modelport plan {llama_8b}`" in problem
    assert admission_problem(deployment(llama_8b, instance="nvidia-a10g"), cache) is None  # context shortened
    assert admission_problem(deployment(llama_8b, instance="nvidia-h100"), cache) is None


def test_a_context_too_long_for_the_instance_is_shortened_unless_the_user_chose_it(
    llama_8b: Path, tmp_path: Path
) -> None:
    cache = ModelCache(tmp_path)
    # 131,072 tokens x 128 KiB = 16 GiB of KV for one sequence: more than an L4 has beside the weights
    l4 = deployment(llama_8b, instance="nvidia-l4")
    fit = fit_for(l4, cache)
    assert fit is not None and fit.fits and 2048 <= fit.context < 131072 and fit.context % 1024 == 0
    assert "does not fit; served at" in fit.notes[-1]
    assert admission_problem(l4, cache) is None
    assert planned_args(l4)[:2] == ["--max-model-len", str(fit.context)]
    # one more block of 1024 tokens would not fit
    longer = fit_for(
        deployment(llama_8b, "--max-model-len", str(fit.context + 1024), instance="nvidia-l4"), cache
    )
    assert longer is not None and not longer.fits
    # a context the user asked for is never shortened: refused, with the reason
    asked = deployment(llama_8b, "--max-model-len", "131072", instance="nvidia-l4")
    assert "no room for one 131,072-token sequence" in (admission_problem(asked, cache) or "")


def test_planned_flags_fill_only_what_the_user_left_unset(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    write_hub_folder(folder, SMALL_LLAMA, llama_tensors(SMALL_LLAMA))
    planned = planned_args(deployment(folder, concurrent=4))
    assert planned[:2] == ["--max-model-len", "4096"]
    kv = int(planned[planned.index("--kv-cache-memory") + 1].removesuffix("B"))
    per_sequence = 2 * 2 * 2 * 16 * 2 * 4096  # K and V, 2 layers, 2 KV heads of 16, bf16, 4096 tokens
    assert kv == 4 * per_sequence
    mine = planned_args(deployment(folder, "--kv-cache-memory", "8MiB", concurrent=4))
    assert mine == ["--max-model-len", "4096"]


def test_pickle_only_folders_need_the_opt_in(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    problem = admission_problem(deployment(folder), ModelCache(tmp_path / "cache"))
    assert problem is not None and "execute arbitrary code" in problem and "--allow-pickle" in problem
    # opted in: the config alone is too thin to plan, so nothing else stands in the way
    assert admission_problem(deployment(folder, "--allow-pickle"), ModelCache(tmp_path / "cache")) is None


def test_what_cannot_be_inspected_is_not_judged(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    # not cached, and the Hub is offline in tests (HF_HUB_OFFLINE=1): stored, judged by the replica
    assert admission_problem(deployment("acme/not-pulled"), cache) is None
    assert planned_args(deployment("acme/not-pulled")) == []
    unknown = Deployment(str(tmp_path), None, (), None, None)  # an instance type the catalog lacks
    assert fit_for(unknown, cache) is None


@pytest.mark.parametrize("native_bf16", [True, False])
def test_an_engine_on_the_cpu_gets_the_context_kv_bytes_and_dtype_of_the_builtin_plan(
    llama_8b: Path, monkeypatch: pytest.MonkeyPatch, native_bf16: bool
) -> None:
    monkeypatch.setattr("modelport.placement.fit.cpu_supports_bf16", lambda: native_bf16)
    plan = engine_plan(deployment(llama_8b, "--max-model-len", "4096", concurrent=2))
    assert plan.engine_flags[:2] == ["--max-model-len", "4096"]
    assert plan.engine_flags[2:] == ([] if native_bf16 else ["--dtype", "float32"])
    assert plan.cpu_kv_cache_bytes == 2 * 4096 * 128 * 1024  # two sequences of 4096 tokens, 128 KiB each
    assert plan.builtin_args == [
        "--kv-cache-memory",
        f"{plan.cpu_kv_cache_bytes}B",
    ]  # the user set the context


def test_an_engine_on_a_gpu_gets_the_planners_vllm_flags(llama_8b: Path) -> None:
    plan = engine_plan(deployment(llama_8b, instance="nvidia-h100"))
    assert plan.cpu_kv_cache_bytes is None
    assert "--gpu-memory-utilization" in plan.engine_flags and "--tensor-parallel-size" in plan.engine_flags
