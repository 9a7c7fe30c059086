"""text-to-image on diffusers: a folder with model_index.json, one image per request, PNG out.

The folder loads with `DiffusionPipeline.from_pretrained` from local files only, safetensors
only unless pickle is allowed, and no component code from the repository unless the operator
trusts it. A missing safety checker is loaded as none (a folder saved without one); a safety
checker that is there runs, as the pipeline's authors meant.

Every request gets its own `torch.Generator` on the CPU seeded with its `seed` (a random one
when absent), so an image depends only on its request, on any device. Requests are not batched:
a batched pipeline call (one forward for N prompts, a generator each) gives the same latents but
differs from the single call in the last float bits (CPU GEMMs block by batch size), and one
pixel in a few thousand moves by a level. The key is unique per request, so the answer to a
seed is the answer an in-process `pipe(prompt, generator=torch.Generator().manual_seed(seed))`
gives, bit for bit, whatever else is running.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import logging
import math
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.engine.loader import ModelLoadError, pick_device, pick_exact_dtype
from modelport.models.formats import PICKLE_SUFFIXES, pickle_refusal
from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import encode_png
from modelport.pipelines.params import Rule, check_parameters, integer, number, one_of, text

log = logging.getLogger(__name__)

TASK = "text-to-image"
MAX_SIDE = 2048
MAX_STEPS = 150
MAX_GUIDANCE = 100.0
MAX_PROMPT_CHARS = 10_000  # the text encoders truncate at their own length (77 tokens for CLIP)
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes any unsigned 64-bit value
INSTALL_HINT = "text-to-image needs diffusers: pip install 'modelport[diffusion]'"
# Components whose absence only turns a feature off; only the safety checker pair is dropped.
_SAFETY = ("safety_checker", "feature_extractor")
# Pipeline call arguments the Inference API's text_to_image parameters map onto, by name.
_CALL_PARAMS = ("negative_prompt", "height", "width", "num_inference_steps", "guidance_scale")
_UNITS = {"images": 1.0}


@dataclass(frozen=True)
class ImageJob:
    """One image to draw: the prompt and the pipeline arguments the request set (None: default)."""

    prompt: str
    seed: int
    negative_prompt: str | None = None
    height: int | None = None
    width: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None


def load(path: Path, task: str, options: LoadOptions) -> DiffusionRunner:
    try:
        import diffusers
    except ImportError as exc:
        raise ModelLoadError(f"{INSTALL_HINT} ({exc})") from exc
    index = _model_index(path)
    if not options.trust_remote_code:
        custom = custom_components(path, index)
        if custom:
            raise ModelLoadError(
                f"{path} needs code shipped with the model to load ({', '.join(custom)}); pass "
                "--trust-remote-code only if you trust it"
            )
    _check_weights(path, index, options.allow_pickle)
    device = pick_device(options.device)
    # bf16 on CPUs that have it would change the images an in-process diffusers call draws
    dtype = pick_exact_dtype(options.dtype, device)
    overrides = {name: None for name in _SAFETY if _declared(index, name) and not (path / name).is_dir()}
    if "safety_checker" in overrides:
        log.warning("%s declares a safety checker but has none: images are not checked", path)
    dtype_arg = "dtype" if _version(diffusers.__version__) >= (0, 42) else "torch_dtype"
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
            str(path),
            use_safetensors=None if options.allow_pickle else True,
            local_files_only=True,
            trust_remote_code=options.trust_remote_code,
            **{dtype_arg: dtype},
            **overrides,
        )
    except Exception as exc:  # whatever a broken folder makes diffusers raise: the load fails
        raise ModelLoadError(f"cannot load {path} as a diffusers pipeline: {exc}") from exc
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return DiffusionRunner(pipe, task)


class DiffusionRunner:
    accepts: frozenset[InputKind] = frozenset({"text", "json"})

    def __init__(self, pipe: Any, task: str = TASK) -> None:
        self.task = task
        self.pipe = pipe
        call = inspect.signature(pipe.__call__).parameters
        image = call.get("image")
        if "prompt" not in call or (image is not None and image.default is inspect.Parameter.empty):
            raise ModelLoadError(f"{type(pipe).__name__} is not a text-to-image pipeline")
        self.call_params = frozenset(name for name in _CALL_PARAMS if name in call)
        self.multiple = _size_multiple(pipe)
        self.default_size = _default_size(pipe)  # (height, width) when the pipeline says
        self.schedulers = _scheduler_classes(pipe.scheduler)
        self._built: dict[str, Any] = {}  # built on first use, from the folder's scheduler config
        self.rules = self._rules()
        self._keys = itertools.count()
        self._lock = threading.Lock()  # the scheduler swap: one pipeline call at a time

    # -- requests ------------------------------------------------------------------------------

    def prepare(self, request: TaskRequest) -> Prepared:
        job = self.job(request.inputs, request.parameters)
        # A key of its own: see the module docstring for why images are never batched.
        return Prepared(payload=job, parameters={}, key=("image", next(self._keys)), units=_UNITS)

    def job(self, prompt: Any, parameters: Any) -> ImageJob:
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskInputError("`inputs` must be the prompt: a non-empty string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise TaskInputError(f"the prompt is over {MAX_PROMPT_CHARS:,} characters")
        params = check_parameters(self.task, parameters, self.rules)
        size = params.pop("target_size", None)
        if size is not None:  # the older Inference API's {"width", "height"}
            for side in ("width", "height"):
                if params[side] is not None and params[side] != size[side]:
                    raise TaskInputError(
                        f"`parameters.target_size.{side}` and `parameters.{side}` disagree",
                        param="parameters.target_size",
                    )
                params[side] = size[side]
        if "width" in params and (params["width"] is None) != (params["height"] is None):
            params.update(self._fill_size(params["height"], params["width"]))
        seed = params.pop("seed")
        return ImageJob(prompt=prompt, seed=secrets.randbits(63) if seed is None else seed, **params)

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        out: list[TaskOutput | BaseException] = []
        for item in items:
            try:
                png = encode_png(self.generate(item.payload))
                out.append(TaskOutput(body=png, media_type="image/png", units=_UNITS))
            except Exception as exc:  # this request only
                out.append(exc)
        return out

    def generate(self, job: ImageJob) -> Any:
        """The PIL image for one job, from its own generator."""
        import torch

        kwargs: dict[str, Any] = {
            name: getattr(job, name) for name in _CALL_PARAMS if getattr(job, name) is not None
        }
        generator = torch.Generator("cpu").manual_seed(job.seed)
        with self._lock, self._scheduler(job.scheduler):
            result = self.pipe(prompt=job.prompt, generator=generator, output_type="pil", **kwargs)
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and any(flagged):
            log.info("the safety checker blanked an image")
        return result.images[0]

    def warmup(self) -> None:
        side = self.multiple * 8  # small, but deep enough for every downsampling stage
        self.generate(ImageJob(prompt="warmup", seed=0, height=side, width=side, num_inference_steps=1))

    # -- internals -----------------------------------------------------------------------------

    def _fill_size(self, height: int | None, width: int | None) -> dict[str, int]:
        # diffusers falls back to its default for BOTH sides when one is missing: the side
        # that was sent would be silently ignored, so the other one takes the default instead.
        if self.default_size is None:
            raise TaskInputError("send both `width` and `height`", param="parameters.width")
        default_height, default_width = self.default_size
        return {"height": height or default_height, "width": width or default_width}

    def _rules(self) -> dict[str, Rule]:
        side = _side(self.multiple)
        rules = {
            "negative_prompt": Rule(text(MAX_PROMPT_CHARS)),
            "height": Rule(side),
            "width": Rule(side),
            "num_inference_steps": Rule(integer(1, MAX_STEPS)),
            "guidance_scale": Rule(number(0.0, MAX_GUIDANCE)),
        }
        rules = {name: rule for name, rule in rules.items() if name in self.call_params}
        if "height" in rules and "width" in rules:
            rules["target_size"] = Rule(_target_size(side))
        rules["seed"] = Rule(integer(0, MAX_SEED))
        rules["scheduler"] = Rule(one_of(*sorted(self.schedulers)))
        return rules

    @contextlib.contextmanager
    def _scheduler(self, name: str | None) -> Iterator[None]:
        if name is None or name == type(self.pipe.scheduler).__name__:
            yield
            return
        default = self.pipe.scheduler
        if name not in self._built:
            self._built[name] = self.schedulers[name].from_config(default.config)
        self.pipe.scheduler = self._built[name]
        try:
            yield
        finally:
            self.pipe.scheduler = default


def custom_components(path: Path, index: Mapping[str, Any]) -> list[str]:
    """The parts of the pipeline that would import code from the folder (diffusers' own rule:
    a component named after a `<library>.py` in its folder, or a custom pipeline class), or
    from a transformers `auto_map`."""
    from diffusers import pipelines
    from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES

    found: list[str] = []
    if isinstance(index.get("_class_name"), list) or (path / "pipeline.py").is_file():
        found.append("a custom pipeline class")
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        library = str(value[0])
        folder = path / name
        if (folder / f"{library}.py").is_file():
            found.append(f"{name} ({library}.py)")
        elif library not in LOADABLE_CLASSES and not hasattr(pipelines, library):
            found.append(f"{name} (module {library})")
        elif _has_auto_map(folder):
            found.append(f"{name} (auto_map)")
    return found


# -- loading helpers -------------------------------------------------------------------------


def _model_index(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise ModelLoadError(f"model folder {path} does not exist")
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(
            f"{path} has no model_index.json: text-to-image needs a diffusers pipeline folder"
        )
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{index_file} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict):
        raise ModelLoadError(f"{index_file} is not a JSON object")
    return index


def _declared(index: Mapping[str, Any], name: str) -> bool:
    value = index.get(name)
    return isinstance(value, list) and len(value) == 2 and value[0] is not None


def _has_auto_map(folder: Path) -> bool:
    for config_name in ("config.json", "tokenizer_config.json", "preprocessor_config.json"):
        config = folder / config_name
        if config.is_file():
            try:
                if "auto_map" in json.loads(config.read_text()):
                    return True
            except (OSError, ValueError):
                continue
    return False


def _check_weights(path: Path, index: Mapping[str, Any], allow_pickle: bool) -> None:
    if allow_pickle:
        return
    for name in index:
        folder = path / name
        if name.startswith("_") or not _declared(index, name) or not folder.is_dir():
            continue
        files = [p for p in folder.iterdir() if p.is_file()]
        pickles = [f"{name}/{p.name}" for p in files if p.suffix in PICKLE_SUFFIXES]
        if pickles and not any(p.suffix == ".safetensors" for p in files):
            raise ModelLoadError(pickle_refusal(str(path), pickles))


def _version(text_version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in text_version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


def _size_multiple(pipe: Any) -> int:
    """Sides must divide into latents (and into patches for transformer pipelines)."""
    step = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    transformer = getattr(pipe, "transformer", None)
    patch = getattr(getattr(transformer, "config", None), "patch_size", None)
    if isinstance(patch, int) and patch > 1:
        step *= patch
    elif transformer is not None:
        step *= 2  # Flux packs 2x2 latent patches without saying so in its config
    return math.lcm(8, step)


def _default_size(pipe: Any) -> tuple[int, int] | None:
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        sample = getattr(getattr(getattr(pipe, "unet", None), "config", None), "sample_size", None)
    if isinstance(sample, int):
        return sample * scale, sample * scale
    if isinstance(sample, list | tuple) and len(sample) == 2:
        return int(sample[0]) * scale, int(sample[1]) * scale
    return None


def _scheduler_classes(current: Any) -> dict[str, Any]:
    """The schedulers this pipeline's own one lists as compatible, by class name."""
    out: dict[str, Any] = {type(current).__name__: type(current)}
    for cls in getattr(current, "compatibles", []):
        out.setdefault(cls.__name__, cls)
    return out


# -- parameter rules -------------------------------------------------------------------------


def _side(multiple: int) -> Any:
    def check(param: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not multiple <= value <= MAX_SIDE:
            raise TaskInputError(f"`{param}` must be an integer from {multiple} to {MAX_SIDE}", param=param)
        if value % multiple:
            raise TaskInputError(f"`{param}` must be a multiple of {multiple}", param=param)
        return value

    return check


def _target_size(side: Any) -> Any:
    def check(param: str, value: Any) -> dict[str, int]:
        if not isinstance(value, Mapping) or set(value) != {"width", "height"}:
            raise TaskInputError(f"`{param}` must be an object with `width` and `height`", param=param)
        return {k: side(f"{param}.{k}", value[k]) for k in ("width", "height")}

    return check


# -- OpenAI /v1/images/generations -----------------------------------------------------------

OPENAI_MAX_IMAGES = 10
# What the body may carry: OpenAI's fields this runner can honour, and the Inference API's
# knobs as extensions (the openai client sends `extra_body` keys at the top level). `user` is
# an end-user id OpenAI keeps for abuse reports: accepted, nothing to do with it here.
_OPENAI_FIELDS = frozenset(
    {"model", "prompt", "n", "size", "response_format", "output_format", "seed", "user"}
    | {"negative_prompt", "num_inference_steps", "guidance_scale", "scheduler"}
)


def openai_image_requests(body: Any) -> list[TaskRequest]:
    """An images/generations body as one TaskRequest per image. With `seed`, image i is drawn
    with seed + i: the same picture `text_to_image(prompt, seed=seed + i)` answers."""
    if not isinstance(body, Mapping):
        raise TaskInputError("the body must be a JSON object", param=None)
    unknown = sorted(set(body) - _OPENAI_FIELDS)
    if unknown:
        raise TaskInputError(
            f"{unknown[0]!r} is not supported here (supported: {', '.join(sorted(_OPENAI_FIELDS))})",
            param=unknown[0],
            code="unsupported_parameter",
        )
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise TaskInputError("`prompt` must be a non-empty string", param="prompt")
    n = body.get("n")
    n = 1 if n is None else integer(1, OPENAI_MAX_IMAGES)("n", n)
    if body.get("response_format") not in (None, "b64_json"):
        raise TaskInputError(
            "`response_format` must be b64_json: modelport keeps no image store to serve URLs from",
            param="response_format",
            code="unsupported_value",
        )
    if body.get("output_format") not in (None, "png"):
        raise TaskInputError("`output_format` must be png", param="output_format", code="unsupported_value")
    params: dict[str, Any] = {
        k: body[k]
        for k in ("negative_prompt", "num_inference_steps", "guidance_scale", "scheduler")
        if body.get(k) is not None
    }
    params.update(_openai_size(body.get("size")))
    seed = body.get("seed")
    if seed is not None:
        seed = integer(0, MAX_SEED)("seed", seed)
    requests = []
    for i in range(n):
        one = dict(params)
        if seed is not None:
            one["seed"] = (seed + i) % (MAX_SEED + 1)
        requests.append(TaskRequest(inputs=prompt, parameters=one, accept="image/png"))
    return requests


def openai_images_response(pngs: Sequence[bytes], created: int) -> dict[str, Any]:
    """The images/generations answer: {"created", "data": [{"b64_json"}]} in request order."""
    import base64

    return {"created": created, "data": [{"b64_json": base64.b64encode(png).decode("ascii")} for png in pngs]}


def _openai_size(size: Any) -> dict[str, int]:
    if size is None or size == "auto":
        return {}
    width, sep, height = size.partition("x") if isinstance(size, str) else ("", "", "")
    if not sep or not width.isdigit() or not height.isdigit():
        raise TaskInputError('`size` must be "auto" or "WIDTHxHEIGHT", e.g. "512x512"', param="size")
    return {"width": int(width), "height": int(height)}
