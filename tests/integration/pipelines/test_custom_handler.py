"""A model folder's own handler.py (the Inference Endpoints custom handler), written by the
test: refused until the operator trusts the repository's code, a requirements.txt checked (never
installed), run per request through a real Batcher, and a request it fails on failing alone."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import LoadOptions, TaskOutput, TaskRequest
from modelport.pipelines.batcher import Batcher
from modelport.pipelines.errors import TaskBackendError
from modelport.pipelines.registry import load_runner
from modelport.pipelines.runners import custom_handler

TRUSTED = LoadOptions(trust_remote_code=True)

HANDLER = """
    import numpy as np

    from helpers import shout  # a module beside handler.py


    class EndpointHandler:
        def __init__(self, path=""):
            with open(f"{path}/greeting.txt") as f:
                self.greeting = f.read().strip()
            self.calls = 0

        def __call__(self, data):
            self.calls += 1
            inputs = data["inputs"]
            params = data.get("parameters") or {}
            if inputs == "boom":
                raise KeyError("no such thing")
            if inputs == "not json":
                return {"value": object()}
            if inputs == "nan":
                return [float("nan")]
            if isinstance(inputs, bytes):
                return {"bytes": len(inputs), "head": inputs[:4].hex()}
            return {
                "text": shout(f"{self.greeting} {inputs}", params.get("times", 1)),
                "parameters": params,
                "scores": np.array([0.5, 0.25]),
            }
"""


def _write_folder(folder: Path, handler: str = HANDLER, requirements: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(textwrap.dedent(handler))
    (folder / "helpers.py").write_text("def shout(text, times):\n    return (text.upper() + ' ') * times\n")
    (folder / "greeting.txt").write_text("hello\n")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def _serve(runner: Any, requests: list[TaskRequest]) -> list[TaskOutput | BaseException]:
    async def go() -> list[TaskOutput | BaseException]:
        batcher: Batcher[Any, TaskOutput] = Batcher(
            runner.run_batch, name="custom", wait_s=0.05, hold_first=True
        )
        batcher.start()
        try:
            prepared = [runner.prepare(r) for r in requests]
            jobs = (batcher.submit(p, p.key, p.size) for p in prepared)
            return list(await asyncio.gather(*jobs, return_exceptions=True))
        finally:
            batcher.shutdown()

    return asyncio.run(go())


def test_refused_without_trust_and_the_message_says_how_to_allow(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "m")
    (folder / "handler.py").write_text("raise SystemExit('the handler must not be imported')\n")
    with pytest.raises(ModelLoadError) as err:
        load_runner(folder, "custom", LoadOptions())
    message = str(err.value)
    assert "--trust-remote-code" in message
    assert "handler.py" in message
    assert "host" in message  # an endpoint's way: model.args, with the host scope


def test_runs_per_request_with_trust(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "m")
    runner = load_runner(folder, "custom", TRUSTED)
    runner.warmup()
    assert str(folder) not in sys.path  # the folder was importable only while handler.py loaded
    outs = _serve(
        runner,
        [
            TaskRequest("world", {"times": 2}),
            TaskRequest("there"),
            TaskRequest(b"\x89PNG\r\n", {}),
        ],
    )
    assert all(isinstance(o, TaskOutput) for o in outs)
    first, second, raw = (o.body for o in outs if isinstance(o, TaskOutput))
    assert first == {"text": "HELLO WORLD HELLO WORLD ", "parameters": {"times": 2}, "scores": [0.5, 0.25]}
    assert second["text"] == "HELLO THERE " and second["parameters"] == {}
    assert raw == {"bytes": 6, "head": "89504e47"}
    assert runner.handler.calls == 3  # type: ignore[attr-defined]
    assert len({runner.prepare(TaskRequest("x")).key for _ in range(3)}) == 3  # never batched


def test_a_request_the_handler_fails_on_fails_alone(tmp_path: Path) -> None:
    runner = load_runner(_write_folder(tmp_path / "m"), "custom", TRUSTED)
    outs = _serve(
        runner,
        [
            TaskRequest("before"),
            TaskRequest("boom"),
            TaskRequest("not json"),
            TaskRequest("nan"),
            TaskRequest("after"),
        ],
    )
    before, boom, not_json, nan, after = outs
    assert isinstance(before, TaskOutput) and isinstance(after, TaskOutput)
    assert isinstance(boom, TaskBackendError)
    assert str(boom) == "the custom handler failed: KeyError: 'no such thing'"
    assert "Traceback" not in str(boom)
    assert isinstance(not_json, TaskBackendError) and "JSON cannot carry" in str(not_json)
    assert "object is not JSON-serialisable" in str(not_json)
    assert isinstance(nan, TaskBackendError) and "JSON cannot carry" in str(nan)


def test_missing_requirements_are_refused_with_their_list(tmp_path: Path) -> None:
    requirements = """
        # what the handler needs
        numpy>=1.0
        --extra-index-url https://example.invalid/simple
        modelport-no-such-package-xyz==1.0
        packaging<0.1 ; python_version >= "3"
        another-missing-one[extra] \\
            >=2
        windows-only-missing ; sys_platform == "nonexistent"
    """
    folder = _write_folder(tmp_path / "m", requirements=textwrap.dedent(requirements))
    (folder / "handler.py").write_text("raise SystemExit('the handler must not be imported')\n")
    with pytest.raises(ModelLoadError) as err:
        load_runner(folder, "custom", TRUSTED)
    message = str(err.value)
    assert "modelport-no-such-package-xyz (not installed)" in message
    assert "another-missing-one (not installed)" in message
    assert "packaging<0.1 (installed:" in message
    assert "numpy" not in message and "windows-only-missing" not in message
    assert "does not install" in message


def test_met_requirements_load(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "m", requirements="numpy\npackaging>=20  # comment\n")
    assert custom_handler.missing_requirements(folder / "requirements.txt") == []
    load_runner(folder, "custom", TRUSTED)


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        ("class Other:\n    pass\n", "defines no class EndpointHandler"),
        ("import modelport_no_such_module_xyz\n", "failed to import: ModuleNotFoundError"),
        (
            "class EndpointHandler:\n    def __init__(self, path):\n        raise RuntimeError('weights?')\n",
            "RuntimeError: weights?",
        ),
        ("def broken(:\n", "failed to import: SyntaxError"),
    ],
)
def test_a_broken_handler_is_a_load_error(tmp_path: Path, handler: str, says: str) -> None:
    folder = _write_folder(tmp_path / "m", handler=handler)
    with pytest.raises(ModelLoadError, match=says):
        load_runner(folder, "custom", TRUSTED)


def test_a_folder_without_handler_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"has no handler\.py"):
        load_runner(tmp_path, "custom", TRUSTED)
