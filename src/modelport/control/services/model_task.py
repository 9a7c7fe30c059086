"""The endpoint's task, settled at create/update time from the model's own files.

A model whose files are here (a local folder, or a cached Hub/S3 snapshot) is checked now: an
unset task becomes the model's own, and a task the model cannot serve is refused (422) with the
tasks it can. A model not yet pulled keeps what was asked; its replica checks again at load and
fails with the same one-line reason. A `handler.py` runs the repository's code, so it is
served only with `--trust-remote-code` in the engine arguments (which needs the host scope).
"""

from __future__ import annotations

from modelport import envs
from modelport.control.services.errors import ControlError
from modelport.models.cache import ModelCache
from modelport.models.tasks import TaskMismatch, detect_tasks, resolve_task
from modelport.placement.fit import local_path
from modelport.spec.endpoint import EndpointSpec, ImageKind

TRUST_FLAG = "--trust-remote-code"


def settle_task(spec: EndpointSpec, cache: ModelCache | None = None) -> EndpointSpec:
    model = spec.model
    if model.image.kind is not ImageKind.HUGGINGFACE:
        return spec  # an external engine serves what it serves; it reports its own refusals
    path = local_path(model.repository, model.revision, cache or ModelCache(envs.model_cache_dir()))
    if path is None or not path.is_dir():
        return spec
    found = detect_tasks(path)
    if not found.tasks and not model.task:
        return spec  # nothing to go on: the replica serves it as a text-generation model, as before
    try:
        task = resolve_task(model.task, found, model.repository)
    except TaskMismatch as exc:
        raise ControlError(422, "validation", str(exc), "model.task") from None
    if task == "custom" and TRUST_FLAG not in model.args:
        raise ControlError(
            422,
            "validation",
            f"{model.repository} has a handler.py, which runs the repository's own code as the endpoint: "
            f"add {TRUST_FLAG} to model.args to allow it (writing that needs the admin token or a key with "
            "the host scope), or set model.task to one of "
            f"{', '.join(t for t in found.tasks if t != 'custom') or 'the tasks its weights serve'}",
            "model.task",
        )
    if task == model.task:
        return spec
    return spec.model_copy(update={"model": model.model_copy(update={"task": task})})
