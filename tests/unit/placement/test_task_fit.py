"""The control plane's fit check and planned flags for task models that are not LLMs.

A classifier or a diffusion pipeline is judged on its weights and one batch's working memory
(models/task_plan.py); it never gets --max-model-len or --kv-cache-memory from the planner.
"""

from __future__ import annotations

from pathlib import Path

from modelport.launchers.builtin import builtin_launch
from modelport.launchers.engines import ReplicaSizing
from modelport.models.cache import ModelCache
from modelport.models.hardware import find_option, local_cpu_option
from modelport.placement.fit import Deployment, admission_problem, engine_plan, fit_for, planned_args
from modelport.store.records import ModelRevision
from tests.support.task_headers import BERT_CLASSIFIER, write_diffusers, write_encoder

BIG_ENCODER = {
    **BERT_CLASSIFIER,
    "model_type": "xlm-roberta",
    "architectures": ["XLMRobertaForSequenceClassification"],
    "hidden_size": 4096,
    "intermediate_size": 16384,
    "max_position_embeddings": 8192,
}


def deployment(model: Path, *args: str, instance: str = "local") -> Deployment:
    option = local_cpu_option(memory_bytes=24 * 2**30) if instance == "local" else find_option(instance, "x1")
    return Deployment(str(model), None, args, option, None)


def test_a_classifier_gets_no_context_or_kv_flags(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    write_encoder(folder, BERT_CLASSIFIER, 110_000_000)
    cpu = deployment(folder)
    assert admission_problem(cpu, ModelCache(tmp_path / "cache")) is None
    assert planned_args(cpu) == []
    assert engine_plan(cpu) == ReplicaSizing()
    assert engine_plan(deployment(folder, instance="nvidia-l4")) == ReplicaSizing()
    revision = ModelRevision(
        str(folder), None, "text-classification", "pytorch", "huggingface", {}, {}, {}, []
    )
    command = builtin_launch("r1", "bert", revision, planned_args(cpu)).command
    assert "--max-model-len" not in command and "--kv-cache-memory" not in command
    assert command[command.index("--task") + 1] == "text-classification"


def test_a_batch_that_does_not_fit_is_refused_until_the_args_lower_it(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    write_encoder(folder, BIG_ENCODER, 1_000_000_000)
    cache = ModelCache(tmp_path / "cache")
    problem = admission_problem(deployment(folder, instance="nvidia-t4"), cache)
    assert problem is not None
    assert problem.startswith(f"{folder} does not fit 1× T4 16GB: no room for a batch of 32 × 8,192-position")
    assert "add --max-batch 14 to the model's args" in problem
    assert problem.endswith(f"`modelport plan {folder}` lists the hardware it fits.")
    assert admission_problem(deployment(folder, "--max-batch", "14", instance="nvidia-t4"), cache) is None
    assert admission_problem(deployment(folder, "--max-batch=15", instance="nvidia-t4"), cache) is not None


def test_a_diffusion_pipeline_is_judged_on_the_sum_of_its_components(tmp_path: Path) -> None:
    folder = tmp_path / "sd"
    write_diffusers(folder)
    cache = ModelCache(tmp_path / "cache")
    fit = fit_for(deployment(folder, instance="nvidia-t4"), cache)
    assert fit is not None and fit.fits and fit.workload == "diffusion"
    assert planned_args(deployment(folder)) == []
    tiny = Deployment(str(folder), None, (), local_cpu_option(memory_bytes=4 * 2**30), None)
    problem = admission_problem(tiny, cache)
    assert problem is not None and "weights 4.3 GB + overhead 545 MB > 3.9 GB usable" in problem
