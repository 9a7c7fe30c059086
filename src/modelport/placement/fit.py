"""Whether an endpoint's model can run on its hardware, decided before anything starts.

On create and update the control plane reads the model's config.json and weight headers (a
local folder, a Hub/S3 source in the weight cache, or else those few kB fetched from the source
with ranged reads) and asks the planner whether it fits the endpoint's instance. A model that
cannot fit fails at once with the planner's explanation, instead of an out-of-memory kill
minutes later; a pickle-only folder is refused unless its engine args allow pickle. The
planner's sizing also becomes the engine's default flags (a user's own args win). A task model
that is not an LLM (a classifier, Whisper, a diffusion pipeline) is judged on its weights and
one batch's working memory (`--max-batch` in its args, else the server's 32) and gets no
context or KV-cache flags.

A source that cannot be reached within REMOTE_TIMEOUT_S is not judged: the endpoint is stored,
and its replica's pull reports the problem as a failed start.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path

from modelport import envs
from modelport.launchers.engines import ReplicaSizing
from modelport.models.cache import ModelCache
from modelport.models.formats import PICKLE_SUFFIXES, pickle_refusal
from modelport.models.hardware import (
    HardwareOption,
    UnknownHardwareError,
    cpu_supports_bf16,
    find_option,
    local_cpu_option,
)
from modelport.models.inspect import ModelInfo, ModelInspectError, inspect_model
from modelport.models.planner import OptionFit, PlanRequest, check_fit
from modelport.models.pull import default_ref, remote_for
from modelport.models.remote import PullError
from modelport.models.remote_headers import fetch_plan_folder
from modelport.models.sources import ModelSource, SourceError, parse_source
from modelport.models.task_plan import LLM
from modelport.spec.endpoint import EndpointSpec
from modelport.spec.engine_flags import flag_values
from modelport.store.records import EndpointRecord, ModelRevision

log = logging.getLogger(__name__)

# Sequences a replica is sized for when the endpoint sets no traffic.maxConcurrent.
DEFAULT_CONCURRENCY = 16
# Engine flags the planner may set; a user's args naming one of them keep the user's value.
PLANNED_FLAGS = ("--max-model-len", "--kv-cache-memory")
# With no --max-model-len, a model whose full context does not fit is served at the longest
# context that does (a multiple of CONTEXT_STEP), as long as that is at least MIN_CONTEXT.
MIN_CONTEXT = 2048
CONTEXT_STEP = 1024
# How long a create or update may wait on a Hub/S3 source's headers before deciding without them.
REMOTE_TIMEOUT_S = 15.0

# Remote models inspected from their headers, by (repository, revision): a revision's headers do not
# change, and every replica launch asks again. Bounded only by the endpoints a user creates.
_remote_info: dict[tuple[str, str | None], ModelInfo] = {}
_remote_lock = threading.Lock()
_fetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plan-headers")


@dataclass(frozen=True)
class Deployment:
    """What the planner is asked about: a model, its engine args, the instance, the concurrency."""

    repository: str
    revision: str | None
    args: tuple[str, ...]
    option: HardwareOption | None
    max_concurrent: int | None
    # the endpoint's env and secrets: HF_TOKEN, S3 keys and endpoint URL reach the source with them
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of_spec(cls, spec: EndpointSpec) -> Deployment:
        compute = spec.compute
        return cls(
            spec.model.repository,
            spec.model.revision,
            tuple(spec.model.args),
            hardware_option(compute.accelerator, compute.instance_type, compute.instance_size),
            spec.traffic.max_concurrent if spec.traffic else None,
            {**spec.model.env, **spec.model.secrets},
        )

    @classmethod
    def of_records(cls, endpoint: EndpointRecord, revision: ModelRevision) -> Deployment:
        return cls(
            revision.repository,
            revision.revision,
            tuple(revision.args),
            hardware_option(endpoint.accelerator, endpoint.instance_type, endpoint.instance_size),
            (endpoint.traffic or {}).get("maxConcurrent"),
            {**revision.env, **revision.secrets},
        )


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
    batch = _value(args, "--max-batch")
    return PlanRequest(
        context=int(context) if context and context.isdigit() else None,
        concurrency=max_concurrent or DEFAULT_CONCURRENCY,
        batch=int(batch) if batch and batch.isdigit() and int(batch) > 0 else None,
    )


def _inspect(path: Path) -> ModelInfo | None:
    try:
        return inspect_model(path)
    except ModelInspectError as exc:
        log.info("cannot plan %s (%s); the engine will check it when it loads", path, exc)
        return None


def _remote_model(
    source: ModelSource, key: tuple[str, str | None], env: Mapping[str, str]
) -> ModelInfo | None:
    with _remote_lock:
        if key in _remote_info:
            return _remote_info[key]

    def fetch() -> ModelInfo | None:
        with tempfile.TemporaryDirectory(prefix="modelport-plan-") as tmp:
            return _inspect(fetch_plan_folder(source, Path(tmp), remote_for(source, env)))

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


def model_info(
    repository: str, revision: str | None, cache: ModelCache, env: Mapping[str, str] | None = None
) -> ModelInfo | None:
    """What the planner needs, from the cache or folder if the files are here, else from the source."""
    path = local_path(repository, revision, cache)
    if path is not None:
        return _inspect(path)
    try:
        source = parse_source(repository, revision)
    except SourceError:
        return None
    return _remote_model(source, (repository, revision), env or {})


def fit_for(deployment: Deployment, cache: ModelCache | None = None) -> OptionFit | None:
    """The planner's verdict, or None when the model or the hardware cannot be inspected."""
    if deployment.option is None:
        return None
    cache = cache or ModelCache(envs.model_cache_dir())
    info = model_info(deployment.repository, deployment.revision, cache, deployment.env)
    if info is None:
        return None
    return _fit_longest_context(info, deployment.option, _request(deployment.args, deployment.max_concurrent))


def _fit_longest_context(info: ModelInfo, option: HardwareOption, request: PlanRequest) -> OptionFit:
    """The plan at the model's context; if only that is too long, at the longest context that fits."""
    fit = check_fit(info, option, request)
    if fit.fits or request.context is not None or fit.memory.kv_budget <= 0 or fit.context <= MIN_CONTEXT:
        return fit
    if fit.workload != LLM:
        return fit  # no context to shorten
    lo, hi = MIN_CONTEXT, fit.context  # check_fit is pure arithmetic: a bisection costs microseconds
    if not check_fit(info, option, replace(request, context=lo)).fits:
        return fit
    while hi - lo > CONTEXT_STEP:
        mid = (lo + hi) // 2 // CONTEXT_STEP * CONTEXT_STEP
        lo, hi = (mid, hi) if check_fit(info, option, replace(request, context=mid)).fits else (lo, mid)
    capped = check_fit(info, option, replace(request, context=lo))
    note = f"the model's {fit.context:,}-token context does not fit; served at {lo:,} tokens"
    return replace(capped, notes=(*capped.notes, note))


def admission_problem(deployment: Deployment, cache: ModelCache | None = None) -> str | None:
    """Why this endpoint cannot be served as asked, in words that say what to do; None if it can."""
    cache = cache or ModelCache(envs.model_cache_dir())
    repository = deployment.repository
    path = local_path(repository, deployment.revision, cache)
    if path is not None and path.is_dir() and "--allow-pickle" not in deployment.args:
        names = [p.name for p in path.iterdir()]
        if not any(n.endswith(".safetensors") for n in names):
            pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
            if pickles:
                return pickle_refusal(repository, pickles)
    fit = fit_for(deployment, cache)
    if fit is None or fit.fits:
        return None
    return (
        f"{repository} does not fit {fit.option.label}: {fit.reason}. "
        f"`modelport plan {repository}` lists the hardware it fits."
    )


def planned_args(deployment: Deployment) -> list[str]:
    """The planner's builtin engine flags that the user's args leave unset (none when it cannot plan)."""
    return engine_plan(deployment).builtin_args


def engine_plan(deployment: Deployment) -> ReplicaSizing:
    """The planner's sizing for a replica of any engine (nothing when it cannot plan)."""
    try:
        fit = fit_for(deployment)
    except (PullError, OSError) as exc:
        log.info("no planned flags for %s: %s", deployment.repository, exc)
        return ReplicaSizing()
    if fit is None or not fit.fits or fit.workload != LLM:
        return ReplicaSizing()  # a task model has no context or KV cache to size
    flags = fit.builtin_flags
    planned: list[str] = []
    for i in range(0, len(flags) - 1, 2):
        flag, value = flags[i], flags[i + 1]
        if flag in PLANNED_FLAGS and _value(deployment.args, flag) is None:
            planned += [flag, value]
    if not fit.option.is_cpu:
        return ReplicaSizing(planned, list(fit.vllm_flags))
    # on the CPU an engine gets the builtin engine's context and the KV bytes the concurrency needs
    values = flag_values(flags)
    kv = values.get("--kv-cache-memory", "").removesuffix("B")
    engine_flags = ["--max-model-len", values["--max-model-len"]] if "--max-model-len" in values else []
    if not cpu_supports_bf16():
        # the builtin engine's rule: without native bf16 instructions, float32 is several times
        # faster (vLLM on an AVX2-only CPU: 111.9 tok/s at 32 streams in float32, 35.4 in bf16)
        engine_flags += ["--dtype", "float32"]
    return ReplicaSizing(planned, engine_flags, int(kv) if kv.isdigit() else None)
