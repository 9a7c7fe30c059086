"""Whether an endpoint's model can run on its hardware, decided before anything starts.

On create and update the control plane reads the model's config.json and weight headers (a
local folder, a Hub/S3 source in the weight cache, or else those few kB fetched from the source
with ranged reads) and asks the planner whether it fits the endpoint's instance. A model that
cannot fit fails at once with the planner's explanation, instead of an out-of-memory kill
minutes later; a pickle-only folder is refused unless its engine args allow pickle. The
planner's sizing also becomes the engine's default flags (a user's own args win).

A source that cannot be reached within REMOTE_TIMEOUT_S is not judged: the endpoint is stored,
and its replica's pull reports the problem as a failed start.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from modelport import envs
from modelport.models.cache import ModelCache
from modelport.models.formats import PICKLE_SUFFIXES, pickle_refusal
from modelport.models.hardware import HardwareOption, UnknownHardwareError, find_option, local_cpu_option
from modelport.models.inspect import ModelInfo, ModelInspectError, inspect_model
from modelport.models.planner import OptionFit, PlanRequest, check_fit
from modelport.models.pull import default_ref
from modelport.models.remote import PullError
from modelport.models.remote_headers import fetch_plan_folder
from modelport.models.sources import ModelSource, SourceError, parse_source

log = logging.getLogger(__name__)

# Sequences a replica is sized for when the endpoint sets no traffic.maxConcurrent.
DEFAULT_CONCURRENCY = 16
# Engine flags the planner may set; a user's args naming one of them keep the user's value.
PLANNED_FLAGS = ("--max-model-len", "--kv-cache-memory")
# How long a create or update may wait on a Hub/S3 source's headers before deciding without them.
REMOTE_TIMEOUT_S = 15.0

# Remote models inspected from their headers, by (repository, revision): a revision's headers do not
# change, and every replica launch asks again. Bounded only by the endpoints a user creates.
_remote_info: dict[tuple[str, str | None], ModelInfo] = {}
_remote_lock = threading.Lock()
_fetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plan-headers")


def local_path(repository: str, revision: str | None, cache: ModelCache) -> Path | None:
    """The model's files on this machine without any network: a folder, or the cached snapshot."""
    try:
        source = parse_source(repository, revision)
    except SourceError:
        return None
    if source.kind == "local":
        return Path(source.location)
    cached = cache.lookup(source, default_ref(source))
    return cache.path_of(cached) if cached is not None else None


def hardware_option(accelerator: str, instance_type: str, instance_size: str) -> HardwareOption | None:
    """The planner's option for an endpoint's compute; None when the catalog does not know it."""
    if accelerator == "cpu":
        return local_cpu_option()
    try:
        return find_option(instance_type, instance_size)
    except UnknownHardwareError:
        return None


def _value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _request(args: Sequence[str], max_concurrent: int | None) -> PlanRequest:
    context = _value(args, "--max-model-len")
    return PlanRequest(
        context=int(context) if context and context.isdigit() else None,
        concurrency=max_concurrent or DEFAULT_CONCURRENCY,
    )


def _inspect(path: Path) -> ModelInfo | None:
    try:
        return inspect_model(path)
    except ModelInspectError as exc:
        log.info("cannot plan %s (%s); the engine will check it when it loads", path, exc)
        return None


def _remote_model(source: ModelSource, key: tuple[str, str | None]) -> ModelInfo | None:
    with _remote_lock:
        if key in _remote_info:
            return _remote_info[key]

    def fetch() -> ModelInfo | None:
        with tempfile.TemporaryDirectory(prefix="modelport-plan-") as tmp:
            return _inspect(fetch_plan_folder(source, Path(tmp)))

    try:
        info = _fetcher.submit(fetch).result(timeout=REMOTE_TIMEOUT_S)
    except FutureTimeout:
        log.info("%s did not answer within %.0f s; not planned", source.display(), REMOTE_TIMEOUT_S)
        return None
    except (PullError, OSError) as exc:
        log.info("cannot read %s's headers (%s); not planned", source.display(), exc)
        return None
    if info is not None:
        with _remote_lock:
            _remote_info[key] = info
    return info


def model_info(repository: str, revision: str | None, cache: ModelCache) -> ModelInfo | None:
    """What the planner needs, from the cache or folder if the files are here, else from the source."""
    path = local_path(repository, revision, cache)
    if path is not None:
        return _inspect(path)
    try:
        source = parse_source(repository, revision)
    except SourceError:
        return None
    return _remote_model(source, (repository, revision))


def fit_for(
    repository: str,
    revision: str | None,
    args: Sequence[str],
    option: HardwareOption | None,
    max_concurrent: int | None,
    cache: ModelCache | None = None,
) -> OptionFit | None:
    """The planner's verdict, or None when the model or the hardware cannot be inspected."""
    if option is None:
        return None
    info = model_info(repository, revision, cache or ModelCache(envs.model_cache_dir()))
    return check_fit(info, option, _request(args, max_concurrent)) if info is not None else None


def admission_problem(
    repository: str,
    revision: str | None,
    args: Sequence[str],
    option: HardwareOption | None,
    max_concurrent: int | None,
    cache: ModelCache | None = None,
) -> str | None:
    """Why this endpoint cannot be served as asked, in words that say what to do; None if it can."""
    cache = cache or ModelCache(envs.model_cache_dir())
    path = local_path(repository, revision, cache)
    if path is not None and path.is_dir() and "--allow-pickle" not in args:
        names = [p.name for p in path.iterdir()]
        if not any(n.endswith(".safetensors") for n in names):
            pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
            if pickles:
                return pickle_refusal(repository, pickles)
    fit = fit_for(repository, revision, args, option, max_concurrent, cache)
    if fit is None or fit.fits:
        return None
    return (
        f"{repository} does not fit {fit.option.label}: {fit.reason}. "
        f"`modelport plan {repository}` lists the hardware it fits."
    )


def planned_args(
    repository: str,
    revision: str | None,
    args: Sequence[str],
    option: HardwareOption | None,
    max_concurrent: int | None,
) -> list[str]:
    """The planner's engine flags that the user's args leave unset (none when it cannot plan)."""
    try:
        fit = fit_for(repository, revision, args, option, max_concurrent)
    except (PullError, OSError) as exc:
        log.info("no planned flags for %s: %s", repository, exc)
        return []
    if fit is None or not fit.fits:
        return []
    flags = fit.builtin_flags
    planned: list[str] = []
    for i in range(0, len(flags) - 1, 2):
        flag, value = flags[i], flags[i + 1]
        if flag in PLANNED_FLAGS and _value(args, flag) is None:
            planned += [flag, value]
    return planned
