"""An endpoint's desired state as pure data, in the Inference Endpoints v2 shape.

The wire names are camelCase (what huggingface_hub sends); Python names are snake_case.
Unknown top-level fields that huggingface_hub sends for the managed service (route,
privateService, cacheHttpResponses) are accepted and ignored. No I/O here except the check
that a local model folder exists, made only when validating new input (context check_paths).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from modelport.models.sources import SourceError, parse_source
from modelport.models.tasks import canonical
from modelport.spec.custom_image import check_custom_image
from modelport.spec.engine_image import check_engine_image, check_engine_model
from modelport.spec.names import NAME_PATTERN
from modelport.spec.traffic import Traffic

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Arguments the control plane sets itself: a user value would break routing or naming.
RESERVED_ENGINE_ARGS = ("--host", "--port", "--served-model-name")
MAX_REPLICAS_LIMIT = 64
MAX_STANDBY = 4


class EndpointType(StrEnum):
    PUBLIC = "public"  # no token needed on the endpoint URL
    PROTECTED = "protected"  # a token is needed
    AUTHENTICATED = "authenticated"  # huggingface_hub's name for protected
    PRIVATE = "private"  # a token is needed; on one machine the same as protected

    @property
    def needs_token(self) -> bool:
        return self is not EndpointType.PUBLIC


class EndpointState(StrEnum):
    """What status.state means (derived by the reconciler from replica facts)."""

    PENDING = "pending"  # accepted, no replica started yet
    INITIALIZING = "initializing"  # replicas starting, none ready
    UPDATING = "updating"  # a new revision is rolling out; the old one still serves
    UPDATE_FAILED = "updateFailed"  # the last update was rolled back; the previous revision serves
    RUNNING = "running"  # at least one replica of the current revision is ready
    PAUSED = "paused"  # stopped by the user; requests get a "paused" error until resume
    FAILED = "failed"  # the model could not be started; status.message has the replica's last lines
    SCALED_TO_ZERO = "scaledToZero"  # no replicas; a request wakes it


class Intent(StrEnum):
    """What the user last asked for, as opposed to what is running."""

    ACTIVE = "active"
    PAUSED = "paused"
    SCALED_TO_ZERO = "scaledToZero"
    DELETING = "deleting"


class ImageKind(StrEnum):
    HUGGINGFACE = "huggingface"  # modelport's builtin engine
    VLLM = "vllm"
    TGI = "tgi"
    TEI = "tei"
    LLAMACPP = "llamacpp"
    SGLANG = "sglang"
    CUSTOM = "custom"


# The kinds this installation can run today; the others are accepted by name and refused with a
# message that says what to use instead.
RUNNABLE_IMAGES = frozenset({ImageKind.HUGGINGFACE, ImageKind.VLLM, ImageKind.LLAMACPP, ImageKind.CUSTOM})


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Measure(_Wire):
    pending_requests: float | None = Field(default=None, gt=0)
    hardware_usage: float | None = Field(default=None, gt=0, le=100)


class Scaling(_Wire):
    min_replica: int = Field(default=1, ge=0, le=MAX_REPLICAS_LIMIT)
    max_replica: int = Field(default=1, ge=1, le=MAX_REPLICAS_LIMIT)
    scale_to_zero_timeout: int | None = Field(default=None, ge=0, description="minutes idle before zero")
    measure: Measure | None = None
    # modelport extensions: the same windows with seconds precision (e.g. seconds on a laptop)
    scale_to_zero_timeout_seconds: float | None = Field(
        default=None, gt=0, description="seconds idle before zero; overrides scaleToZeroTimeout"
    )
    stabilization_window_seconds: float | None = Field(
        default=None, ge=0, description="scale down only below the highest need of this window (default 300)"
    )
    warm_standby: int = Field(
        default=0,
        ge=0,
        le=MAX_STANDBY,
        description="replicas kept started with weights loaded but not serving, so scaling up (from zero "
        "too) skips the load; they cost their memory all the time",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        if self.min_replica > self.max_replica:
            raise ValueError(
                f"minReplica ({self.min_replica}) must not exceed maxReplica ({self.max_replica})"
            )
        return self


class Compute(_Wire):
    accelerator: str = "cpu"
    instance_type: str = "local"
    instance_size: str = "x1"
    scaling: Scaling = Field(default_factory=Scaling)

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, value: str) -> str:
        if value not in ("cpu", "gpu"):
            raise ValueError(f"accelerator must be 'cpu' or 'gpu', got {value!r}")
        return value


class Image(BaseModel):
    """`model.image`: a union keyed by variant, e.g. {"huggingface": {}} or {"vLLM": {...}}."""

    kind: ImageKind
    config: dict[str, Any]


class ModelSpec(_Wire):
    repository: str = Field(min_length=1)
    revision: str | None = None
    # None: the model's own task (models/tasks.py), settled at create time when its files are here
    task: str | None = Field(default=None, max_length=64)
    framework: str = "pytorch"
    image: Image = Field(default_factory=lambda: Image(kind=ImageKind.HUGGINGFACE, config={}))
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    args: list[str] = Field(default_factory=list, description="extra engine arguments")

    @field_validator("task")
    @classmethod
    def _canonical_task(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        task = canonical(value)
        if not _TASK_NAME.match(task):
            raise ValueError("a task is a Hub task name such as text-classification or image-to-text")
        return task

    @field_validator("image", mode="before")
    @classmethod
    def _parse_image(cls, value: Any) -> Any:
        if isinstance(value, Image):
            return value
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError('image must be an object with exactly one variant, e.g. {"huggingface": {}}')
        ((variant, config),) = value.items()
        try:
            kind = ImageKind(variant.lower())
        except ValueError:
            names = ", ".join(k.value for k in ImageKind)
            raise ValueError(f"unknown image variant {variant!r}; known: {names}") from None
        if kind not in RUNNABLE_IMAGES:
            raise ValueError(
                f"image {variant!r} cannot run on this installation: modelport cannot install it here; use "
                '{"huggingface": {}} (modelport\'s builtin engine), {"vllm": {}}, {"llamacpp": {}} or '
                '{"custom": {"command": [...]}} (your own server)'
            )
        if not isinstance(config, dict):
            raise ValueError(f"image.{variant} must be an object")
        if kind == ImageKind.CUSTOM:
            config = check_custom_image(config)
        elif kind in (ImageKind.VLLM, ImageKind.LLAMACPP):
            config = check_engine_image(kind.value, config)
        return Image(kind=kind, config=config)

    @field_validator("env", "secrets")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value

    @model_validator(mode="after")
    def _source_suits_engine(self) -> ModelSpec:
        check_engine_model(self.image.kind.value, self.repository, self.args)
        return self

    @field_validator("args")
    @classmethod
    def _no_reserved_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.split("=", 1)[0] in RESERVED_ENGINE_ARGS:
                raise ValueError(f"{arg.split('=', 1)[0]} is set by modelport and cannot be given in args")
        return value

    @field_validator("repository")
    @classmethod
    def _known_source(cls, value: str, info: ValidationInfo) -> str:
        # Checked only for new input (context check_paths): a stored endpoint whose folder went away
        # must still load, and then fail visibly on its replicas.
        if not (info.context or {}).get("check_paths"):
            return value
        try:
            source = parse_source(value)
        except SourceError as exc:
            raise ValueError(str(exc)) from None
        if source.kind != "local":
            return value  # a Hub id or S3 URL: pulled into the weight cache, or already there
        path = Path(source.location)
        if path.suffix.lower() == ".gguf":
            if not path.is_file():
                raise ValueError(f"no GGUF file at {value}")
            return str(path)
        # transformers folders have config.json, diffusers pipelines model_index.json, custom
        # handlers (the managed convention) handler.py
        if not any((path / name).is_file() for name in ("config.json", "model_index.json", "handler.py")):
            raise ValueError(
                f"no model folder at {value} (expected config.json, model_index.json or handler.py there); "
                "give a folder, a Hub id (org/name) or an s3://bucket/prefix URL"
            )
        return str(path)


class Provider(_Wire):
    vendor: str = "local"
    region: str = "local"


class EndpointSpec(_Wire):
    """The create payload; also the shape an update is merged into."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str = Field(pattern=NAME_PATTERN)
    type: EndpointType = EndpointType.PROTECTED
    compute: Compute = Field(default_factory=Compute)
    model: ModelSpec
    provider: Provider = Field(default_factory=Provider)
    tags: list[str] = Field(default_factory=list)
    traffic: Traffic | None = None

    @model_validator(mode="after")
    def _sleep_needs_a_gpu(self) -> EndpointSpec:
        image = self.model.image
        if (
            image.kind == ImageKind.VLLM
            and image.config.get("sleepMode")
            and self.compute.accelerator == "cpu"
        ):
            raise ValueError(
                'model.image.vllm.sleepMode needs a GPU: vLLM on the CPU refuses sleep mode ("Sleep mode '
                'is not supported on current platform"); use compute.accelerator "gpu", or drop sleepMode'
            )
        return self

    @model_validator(mode="after")
    def _policies_point_elsewhere(self) -> EndpointSpec:
        if self.traffic is not None:
            if self.traffic.overflow is not None and self.traffic.overflow.endpoint == self.name:
                raise ValueError("traffic.overflow.endpoint must name another endpoint")
            if self.traffic.fallback == self.name:
                raise ValueError("traffic.fallback must name another endpoint")
        return self

    def to_wire(self, *, redact_secrets: bool = True) -> dict[str, Any]:
        data = self.model_dump(by_alias=True, mode="json")
        data["model"]["image"] = {self.model.image.kind.value: self.model.image.config}
        if redact_secrets:
            data["model"]["secrets"] = {key: "***" for key in self.model.secrets}
        return data


def merge_update(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a partial PUT body into the current wire object (objects merge, values replace).

    `model.image` and dict-valued env/secrets/tags replace as a whole, as in the managed API; a
    secret sent back as "***" keeps its stored value so a fetched object can be PUT unchanged.
    """
    out = dict(current)
    for key, value in patch.items():
        if key == "model" and isinstance(value, dict):
            model = dict(current.get("model", {}))
            for mkey, mvalue in value.items():
                if mkey == "secrets" and isinstance(mvalue, dict):
                    old = current.get("model", {}).get("secrets", {})
                    model[mkey] = {k: old.get(k, v) if v == "***" else v for k, v in mvalue.items()}
                else:
                    model[mkey] = mvalue
            out[key] = model
        elif key == "traffic" and isinstance(value, dict):
            out[key] = {**(current.get("traffic") or {}), **value}
        elif key == "compute" and isinstance(value, dict):
            compute = dict(current.get("compute", {}))
            for ckey, cvalue in value.items():
                if ckey == "scaling" and isinstance(cvalue, dict):
                    compute[ckey] = {**compute.get("scaling", {}), **cvalue}
                else:
                    compute[ckey] = cvalue
            out[key] = compute
        else:
            out[key] = value
    return out
