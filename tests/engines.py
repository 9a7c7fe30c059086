"""External engines for tests: the llama-cpp-python source package (llama.cpp's GGUF converter).

`llamacpp_sdist` is the sdist of the installed llama.cpp engine when there is one, else one
`pip download`-ed once into ~/.cache/modelport-test/sdists and reused by later runs. Import the
fixture into a test module to use it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from modelport import envs
from modelport.models.gguf_convert import ConvertError, engine_sdist

LLAMACPP_VERSION = "0.3.36"
SDIST_CACHE = Path.home() / ".cache" / "modelport-test" / "sdists"


def download_llamacpp_sdist(version: str = LLAMACPP_VERSION, cache: Path = SDIST_CACHE) -> Path:
    """llama_cpp_python-<version>.tar.gz in `cache`, downloaded the first time (76 MB)."""
    target = cache / f"llama_cpp_python-{version}.tar.gz"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        # --no-binary only for llama-cpp-python: its build requirements may come as wheels
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python"]
        done = subprocess.run(
            [*command, f"llama-cpp-python=={version}", "-d", tmp],
            capture_output=True,
            text=True,
            timeout=900,
        )
        got = Path(tmp) / target.name
        if done.returncode != 0 or not got.is_file():
            pytest.fail(
                f"cannot download the llama-cpp-python {version} sdist:\n{done.stdout}\n{done.stderr}"
            )
        got.rename(target)  # whole or not at all: a cut download stays in the temporary folder
    return target


@pytest.fixture(scope="session")
def llamacpp_sdist() -> Path:
    try:
        return engine_sdist(envs.engines_dir())
    except ConvertError:
        return download_llamacpp_sdist()
