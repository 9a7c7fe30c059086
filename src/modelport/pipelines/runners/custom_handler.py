"""A model folder's own handler.py: the Inference Endpoints custom handler convention.

The folder holds `handler.py` defining `class EndpointHandler` built as `EndpointHandler(path)`
and called as `handler(data)` with `data = {"inputs": ..., "parameters": {...}}` (binary
inputs as bytes), returning something JSON can carry. That is the repository's own Python
running in the replica, so it loads only when the operator trusts the model's code
(`--trust-remote-code`, the switch that lets transformers run a model's own code). A
requirements.txt is checked, never installed: a package it names that is missing (or at a
version outside its range) stops the load with the list.

Requests run one at a time, each on its own: the handler is called per request, and what it
raises or answers that JSON cannot carry fails that request alone (500, the exception's type and
message, no traceback).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest
from modelport.pipelines.errors import TaskBackendError, TaskInputError

log = logging.getLogger(__name__)

HANDLER_FILE = "handler.py"
HANDLER_CLASS = "EndpointHandler"
REQUIREMENTS_FILE = "requirements.txt"
MAX_ERROR_CHARS = 1000  # an exception's message as the client sees it
_IMPORTS = itertools.count()  # each load its own module, even of the same file


def trust_refusal(path: Path) -> str:
    return (
        f"{path} is served by its own {HANDLER_FILE}, which runs the repository's Python code in the "
        "replica; modelport runs it only when you trust that code: `modelport serve --trust-remote-code` "
        '(for an endpoint, model.args ["--trust-remote-code"], which needs a key with the `host` scope)'
    )


def load(path: Path, task: str, options: LoadOptions) -> CustomHandlerRunner:
    handler_file = path / HANDLER_FILE
    if not handler_file.is_file():
        raise ModelLoadError(f"{path} has no {HANDLER_FILE} defining class {HANDLER_CLASS}")
    if not options.trust_remote_code:
        raise ModelLoadError(trust_refusal(path))
    missing = missing_requirements(path / REQUIREMENTS_FILE)
    if missing:
        raise ModelLoadError(
            f"{path}/{REQUIREMENTS_FILE} names packages this environment lacks: {'; '.join(missing)}. "
            "modelport does not install packages: add them to the replica's environment"
        )
    module = import_handler(handler_file)
    cls = getattr(module, HANDLER_CLASS, None)
    if not isinstance(cls, type):
        raise ModelLoadError(f"{handler_file} defines no class {HANDLER_CLASS}")
    try:
        handler = cls(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{HANDLER_CLASS}({str(path)!r}) failed: {_described(exc)}") from exc
    if not callable(handler):
        raise ModelLoadError(f"{HANDLER_CLASS} in {handler_file} is not callable (no __call__)")
    return CustomHandlerRunner(handler, task)


class CustomHandlerRunner:
    accepts: frozenset[InputKind] = frozenset({"text", "json", "image", "audio"})

    def __init__(self, handler: Any, task: str = "custom") -> None:
        self.task = task
        self.handler = handler
        self._keys = itertools.count()

    def prepare(self, request: TaskRequest) -> Prepared:
        parameters = request.parameters
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, Mapping):
            raise TaskInputError("`parameters` must be a JSON object", param="parameters")
        data = {"inputs": request.inputs, "parameters": dict(parameters)}
        # A key of its own: the handler takes one request at a time, never a batch.
        return Prepared(payload=data, parameters=data["parameters"], key=("custom", next(self._keys)))

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        return [self._run_one(item.payload) for item in items]

    def warmup(self) -> None:
        """Nothing to warm: only the handler knows what input it takes."""

    def _run_one(self, data: dict[str, Any]) -> TaskOutput | BaseException:
        try:
            answer = self.handler(data)
        except Exception as exc:
            log.warning("the custom handler raised %s", type(exc).__name__)
            return TaskBackendError(f"the custom handler failed: {_described(exc)}")
        try:
            body = json.loads(json.dumps(answer, allow_nan=False, default=_plain))
        except (TypeError, ValueError, RecursionError) as exc:
            return TaskBackendError(
                f"the custom handler answered a {type(answer).__name__} that JSON cannot carry: "
                f"{_described(exc, with_type=False)}"
            )
        return TaskOutput(body=body)


def missing_requirements(requirements: Path) -> list[str]:
    """What requirements.txt names that is not installed here, or not at a version it allows.

    Lines pip reads as options (-r, -e, --index-url ...) are not packages and are skipped; a
    line that is neither is reported as unreadable rather than guessed at.
    """
    if not requirements.is_file():
        return []
    from packaging.requirements import InvalidRequirement, Requirement

    problems: list[str] = []
    for raw in _logical_lines(requirements.read_text(errors="replace")):
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("#") or not line:
            continue
        if line.startswith("-"):
            log.warning("%s: the option line %r is not checked", requirements, line)
            continue
        line = line.split(" --", 1)[0].strip()  # per-requirement options such as --hash
        try:
            req = Requirement(line)
        except InvalidRequirement:
            problems.append(f"{line!r} (not a requirement modelport can read)")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{req.name} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{req.name}{req.specifier} (installed: {have})")
    return problems


def import_handler(handler_file: Path) -> ModuleType:
    """Import handler.py under a name of its own, with its folder importable only meanwhile (so
    the handler's sibling modules load, and the folder does not shadow anything afterwards)."""
    folder = str(handler_file.parent)
    digest = hashlib.sha256(str(handler_file.resolve()).encode()).hexdigest()[:16]
    name = f"modelport_custom_handler_{digest}_{next(_IMPORTS)}"
    spec = importlib.util.spec_from_file_location(name, handler_file)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{handler_file} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise ModelLoadError(f"{handler_file} failed to import: {_described(exc)}") from exc
    finally:
        with contextlib.suppress(ValueError):  # the handler took it out itself
            sys.path.remove(folder)
    return module


def _logical_lines(content: str) -> list[str]:
    """requirements.txt lines with backslash continuations joined, as pip reads them."""
    lines: list[str] = []
    pending = ""
    for line in content.splitlines():
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def _plain(value: Any) -> Any:
    """numpy arrays and scalars, torch tensors: what handlers return most, as plain lists/numbers."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()  # NaN and infinities in it are refused by the encoder (allow_nan=False)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _described(exc: BaseException, with_type: bool = True) -> str:
    message = str(exc)
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + " …"
    if not with_type:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
