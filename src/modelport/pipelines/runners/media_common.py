"""What the image and audio runners share: loading a Hub folder the safe way, and a runner that
decodes media in `prepare` and runs a transformers pipeline over a whole batch in `run_batch`.

The pipeline objects are built once from the loaded model and processors and are only ever called
from the batch worker's thread, so they need no lock.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import as_bytes
from modelport.pipelines.params import Rule, check_parameters, integer, number, one_of

MAX_INPUTS = 64  # images or clips in one request


@dataclass(frozen=True)
class Loaded:
    model: Any
    device: Any  # torch.device
    dtype: Any  # torch.dtype


def load_model(path: Path, options: LoadOptions, model_class: Any) -> Loaded:
    """`model_class.from_pretrained` with modelport's rules: no pickle unless allowed, no remote code
    unless trusted, nothing from the network, float32 on CPU unless a dtype is named."""

    from modelport.engine.loader import check_weights, pick_device, pick_exact_dtype

    has_safetensors = check_weights(path, options.allow_pickle)
    device = pick_device(options.device)
    # task models are small and their scores are compared to float32 references
    dtype = pick_exact_dtype(options.dtype, device)
    model = model_class.from_pretrained(
        path,
        local_files_only=True,
        use_safetensors=True if has_safetensors else None,
        trust_remote_code=options.trust_remote_code,
        dtype=dtype,
    )
    model.to(device)
    model.eval()
    return Loaded(model, device, dtype)


def from_folder(auto_class: Any, path: Path, options: LoadOptions) -> Any:
    """A tokenizer/processor from the folder, offline, remote code only when trusted."""
    return auto_class.from_pretrained(
        path, local_files_only=True, trust_remote_code=options.trust_remote_code
    )


# -- parameters ----------------------------------------------------------------------------------

CLASSIFY_RULES: dict[str, Rule] = {
    "top_k": Rule(integer(1, 10_000)),
    "function_to_apply": Rule(one_of("sigmoid", "softmax", "none")),
}


def generation_rules(max_new_tokens: int) -> dict[str, Rule]:
    """The generate() settings the Inference API's `generation_parameters` carries and transformers 5
    still implements (it moved group beam search and contrastive search out, so `num_beam_groups`
    and `penalty_alpha` are refused rather than ignored)."""
    return {
        "do_sample": Rule(_bool),
        "early_stopping": Rule(_early_stopping),
        "epsilon_cutoff": Rule(number(0.0, 1.0)),
        "eta_cutoff": Rule(number(0.0, 1.0)),
        "max_length": Rule(integer(1, max_new_tokens)),
        "max_new_tokens": Rule(integer(1, max_new_tokens)),
        "min_length": Rule(integer(0, max_new_tokens)),
        "min_new_tokens": Rule(integer(0, max_new_tokens)),
        "num_beams": Rule(integer(1, 8)),
        "temperature": Rule(number(0.0, 100.0)),
        "top_k": Rule(integer(0, 10_000)),
        "top_p": Rule(number(0.0, 1.0)),
        "typical_p": Rule(number(0.0, 1.0)),
        "use_cache": Rule(_bool),
    }


def _bool(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TaskInputError(f"`{param}` must be true or false", param=param)
    return value


def _early_stopping(param: str, value: Any) -> bool | str:
    if isinstance(value, bool) or value == "never":
        return value  # type: ignore[no-any-return]
    raise TaskInputError(f'`{param}` must be true, false or "never"', param=param)


def generation_object(task: str, max_new_tokens: int) -> Any:
    """A rule for the nested `generation_parameters` object."""
    rules = generation_rules(max_new_tokens)

    def check(param: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TaskInputError(f"`{param}` must be a JSON object", param=param)
        try:
            given = check_parameters(task, value, rules)
        except TaskInputError as exc:
            exc.param = f"{param}.{(exc.param or '').removeprefix('parameters.')}"
            raise
        return {k: v for k, v in given.items() if v is not None}

    return check


def freeze(value: Any) -> Hashable:
    """A hashable form of parameter values (lists and objects), for batch keys."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value  # type: ignore[no-any-return]


# -- the runner ----------------------------------------------------------------------------------


def split_inputs(inputs: Any, what: str) -> tuple[list[Any], bool]:
    """One input, or a JSON list of them (answered with a list)."""
    if isinstance(inputs, list):
        if not inputs:
            raise TaskInputError(f"`inputs` is an empty list: send at least one {what}")
        if len(inputs) > MAX_INPUTS:
            raise TaskInputError(
                f"`inputs` holds {len(inputs)} {what}s, over the limit of {MAX_INPUTS} per request",
                status=413,
            )
        return list(inputs), True
    return [inputs], False


class MediaPipelineRunner:
    """Decode each input in `prepare`; run the whole batch through one transformers pipeline call.

    Subclasses set `task`, `accepts`, `what`, `rules` and override `decode`, `check` (cross-field
    parameter rules), `call_kwargs` (parameters → pipeline keyword arguments) and `shape` (one
    pipeline answer → the Inference API's JSON).
    """

    task: str
    accepts: frozenset[InputKind]
    what: str = "image"
    rules: Mapping[str, Rule] = {}

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    # hooks ----------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def measure(self, decoded: Sequence[Any]) -> tuple[int, dict[str, float]]:
        return 1, {"images": float(len(decoded))}

    def check(self, params: dict[str, Any]) -> None:
        """Rules between parameters, or against the model (400 on failure)."""

    def call_kwargs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if v is not None}

    def shape(self, answer: Any, source: Any) -> Any:
        """One pipeline answer in the Inference API's shape; `source` is the decoded input."""
        return answer

    def run_inputs(self, inputs: list[Any], params: Mapping[str, Any]) -> list[Any]:
        return list(self.pipe(inputs, batch_size=len(inputs), **self.call_kwargs(params)))

    # TaskRunner -----------------------------------------------------------------------------
    def prepare(self, request: TaskRequest) -> Prepared:
        params = check_parameters(self.task, request.parameters, self.rules)
        self.check(params)
        raw, many = split_inputs(request.inputs, self.what)
        decoded = [self.decode(as_bytes(item, self.what, request.allow_urls)) for item in raw]
        size, units = self.measure(decoded)
        return Prepared(
            payload=decoded,
            parameters=params,
            key=freeze(params),
            size=size,
            units=units,
            many=many,
        )

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        flat = [x for item in items for x in item.payload]
        answers = self.run_inputs(flat, items[0].parameters)  # one key per batch: same parameters
        out: list[TaskOutput | BaseException] = []
        start = 0
        for item in items:
            mine = answers[start : start + len(item.payload)]
            shaped = [self.shape(a, src) for a, src in zip(mine, item.payload, strict=True)]
            start += len(item.payload)
            out.append(TaskOutput(body=shaped if item.many else shaped[0], units=item.units))
        return out

    def warmup(self) -> None:
        raise NotImplementedError
