"""local_weights_problem: a local folder's safetensors files checked from their headers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from modelport.models.weights_check import local_weights_problem, safetensors_files


def write_weights(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"a.weight": np.ones((8, 16), np.float32), "b.bias": np.zeros(16, np.float32)}, str(path))
    return path


def model_folder(root: Path) -> Path:
    (root / "config.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}")
    write_weights(root / "model-00001-of-00002.safetensors")
    write_weights(root / "model-00002-of-00002.safetensors")
    return root


def test_whole_files_pass(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    write_weights(folder / "vae" / "diffusion_pytorch_model.safetensors")
    assert local_weights_problem(str(folder)) is None


def test_a_truncated_file_is_named_in_one_line(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    shard = folder / "model-00002-of-00002.safetensors"
    whole = shard.stat().st_size
    os.truncate(shard, whole - 100)

    problem = local_weights_problem(str(folder))

    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"{shard}: {whole - 100} bytes on disk but its header describes {whole}")
    assert "truncated" in problem


def test_a_file_in_a_subfolder_cut_inside_its_header(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    unet = write_weights(folder / "unet" / "diffusion_pytorch_model.safetensors")
    os.truncate(unet, 20)
    assert local_weights_problem(str(folder)) == f"{unet}: cut short inside its safetensors header"


def test_a_file_that_is_not_safetensors(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"not safetensors")
    problem = local_weights_problem(str(folder))
    assert problem is not None and "model-00001-of-00002.safetensors: not a safetensors file" in problem


def test_a_dangling_link_cannot_be_read(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    (folder / "extra.safetensors").symlink_to(tmp_path / "gone")
    problem = local_weights_problem(str(folder))
    assert problem == f"{folder / 'extra.safetensors'}: cannot read (No such file or directory)"


def test_other_sources_and_hidden_folders_are_not_read(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    hidden = write_weights(folder / ".cache" / "partial.safetensors")
    os.truncate(hidden, 10)
    assert safetensors_files(folder) == [
        folder / "model-00001-of-00002.safetensors",
        folder / "model-00002-of-00002.safetensors",
    ]
    assert local_weights_problem(str(folder)) is None
    for source in ("org/model", "s3://bucket/prefix", str(tmp_path / "model.gguf"), "not a source!"):
        assert local_weights_problem(source) is None
