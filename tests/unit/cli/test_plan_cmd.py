"""`modelport plan` on a diffusers-shaped folder of header-only weight files: the task, every
component and the batch in the JSON and in the table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from modelport.cli.main import app
from tests.support.task_headers import SD_PARAMS, write_diffusers

runner = CliRunner(env={"COLUMNS": "250"})


def test_plan_json_of_a_diffusers_folder_lists_its_components(tmp_path: Path) -> None:
    write_diffusers(tmp_path)
    result = runner.invoke(app, ["plan", str(tmp_path), "--json", "--hardware", "nvidia-t4,nvidia-l4"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["workload"] == "diffusion" and data["tasks"] == ["text-to-image"]
    assert data["model"]["architecture"] == "StableDiffusionPipeline"
    assert [(c["name"], c["parameters"], c["bytes"]) for c in data["components"]] == [
        (name, params, params * 4) for name, params in SD_PARAMS.items()
    ]
    assert data["weights_bytes"] == sum(SD_PARAMS.values()) * 4  # the checkpoint's fp32
    assert data["batch"] == {
        "size": 1,
        "item": "512×512 images",
        "bytes_per_item": 131_072 + 512 * 512 * 3072 * 4,
    }
    rows = {r["instance_type"]: r for r in data["rows"]}
    assert rows["nvidia-t4"]["fits"] and rows["nvidia-t4"]["workload"] == "diffusion"
    assert rows["nvidia-t4"]["memory_per_device"]["weights_bytes"] == sum(SD_PARAMS.values()) * 2
    assert rows["nvidia-t4"]["bytes_per_batch_item"] == 131_072 + 512 * 512 * 3072 * 2
    assert rows["nvidia-t4"]["vllm_flags"] == [] and rows["nvidia-t4"]["builtin_flags"] == []
    assert data["cheapest"]["instance_type"] == "nvidia-t4"


def test_plan_table_of_a_diffusers_folder_shows_tasks_components_and_batch(tmp_path: Path) -> None:
    write_diffusers(tmp_path)
    result = runner.invoke(app, ["plan", str(tmp_path), "--hardware", "nvidia-t4", "--resolution", "768x512"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "text-to-image (from model_index.json (StableDiffusionPipeline))" in out
    assert "unet (UNet2DConditionModel): 860M parameters, 3.4 GB fp32" in out
    assert "batch of 1 × 768×512 images" in out and "Max batch" in out
    assert "Cheapest for a batch of 1 × 768×512 images: 1× T4 16GB" in out
    assert f"modelport serve {tmp_path}" in out
    bad = runner.invoke(app, ["plan", str(tmp_path), "--resolution", "big"])
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output
