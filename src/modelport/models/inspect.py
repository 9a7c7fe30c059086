"""Inspect a model on disk without loading it: its facts, exact parameter count and weight bytes.

A Hugging Face folder gives its architecture in config.json and its tensors in the safetensors
headers (names, dtypes, shapes: exact counts and bytes in a few small reads). A GGUF file
carries both in its own metadata. Where there are no weights to read (a folder with only a
config, or only pickle files, which are never opened), the count comes from the config by
formula, and `ModelInfo.parameter_source` says so.

A model's tasks (tasks.py) say how it is planned: a text-generation model (or one whose task
cannot be told) as an LLM, any other as a task model described by its towers (architecture.py).
A diffusers folder (model_index.json, one subfolder per component) is the sum of its
components' safetensors headers, each kept in `ModelInfo.components`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelport.models.architecture import (
    ArchitectureError,
    ModelFacts,
    ParamCount,
    Tower,
    facts_from_config,
    facts_without_formula,
    parameter_count,
    towers_from_config,
)
from modelport.models.diffusers_folder import PipelineReadError, read_pipeline
from modelport.models.formats import (
    GGUF_SUFFIX,
    SAFETENSORS_SUFFIX,
    FormatError,
    TensorInfo,
    is_pickle,
    read_safetensors_headers,
)
from modelport.models.quantization import scheme_for_dtype
from modelport.models.task_plan import LLM, Component, DiffusionFacts, workload_kind
from modelport.models.tasks import detect_tasks

SOURCE_SAFETENSORS = "safetensors headers"
SOURCE_GGUF = "gguf"
SOURCE_CONFIG = "config (analytic)"
INDEX_FILE = "model.safetensors.index.json"

# tensors that hold quantization state, not parameters
_AUX_SUFFIXES = (
    ".qzeros",
    ".scales",
    ".g_idx",
    ".weight_scale",
    ".weight_scale_inv",
    ".input_scale",
    ".weight_zero_point",
    ".weight_g_idx",
    ".weight_shape",
    ".k_scale",
    ".v_scale",
    ".rotary_emb.inv_freq",
)
_PACKED_SUFFIXES = (".qweight", ".weight_packed")  # int4 in int32 words
_EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight")
_LM_HEAD_SUFFIXES = ("lm_head.weight", "shared_head.head.weight")


class ModelInspectError(Exception):
    """A model cannot be inspected; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    source: str  # the folder or file inspected
    facts: ModelFacts
    parameters: ParamCount
    checkpoint_scheme: str  # bf16, fp16, fp32, fp8, awq, gptq, int8, gguf-q4_k_m...
    checkpoint_bytes: int | None  # exact tensor bytes of the weight files; None without weights
    parameter_source: str  # SOURCE_SAFETENSORS, SOURCE_GGUF or SOURCE_CONFIG
    notes: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()  # detect_tasks's answer; the first is the default
    task_evidence: str = ""
    towers: tuple[Tower, ...] = ()  # a task model's stacks; empty for an LLM
    components: tuple[Component, ...] = ()  # a diffusion pipeline's parts
    diffusion: DiffusionFacts | None = None

    @property
    def workload(self) -> str:
        """llm, encoder, seq2seq or diffusion (task_plan.py): how the planner sizes it."""
        return workload_kind(self.tasks, self.towers, self.diffusion is not None)


def inspect_model(path: Path) -> ModelInfo:
    """Inspect a model folder (config.json + safetensors, GGUF or pickle files) or a .gguf file."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.name.endswith(GGUF_SUFFIX):
            return _inspect_gguf(path)
        if path.name == "config.json":
            return _inspect_folder(path.parent)
        raise ModelInspectError(f"{path} is neither a model folder nor a .gguf file")
    if not path.is_dir():
        raise ModelInspectError(f"{path} does not exist: pass a model folder or a .gguf file")
    if (path / "model_index.json").is_file():
        return _inspect_diffusers(path)
    if (path / "config.json").is_file():
        return _inspect_folder(path)
    firsts = _first_gguf_files(path)
    if len(firsts) == 1:
        return _inspect_gguf(firsts[0])
    if firsts:
        shown = ", ".join(p.name for p in firsts[:4])
        raise ModelInspectError(f"{path} holds several GGUF files ({shown}); pass the one you want to plan")
    raise ModelInspectError(
        f"{path} has no config.json, model_index.json or .gguf file: point at a Hugging Face model "
        "folder (config.json and weights, or config.json alone), a diffusers folder or a .gguf file"
    )


def _first_gguf_files(folder: Path) -> list[Path]:
    """The GGUF files of a folder, one per model (the first shard of a split one)."""
    firsts = []
    for p in sorted(folder.iterdir()):
        match = _SHARD.search(p.name)
        if p.name.endswith(GGUF_SUFFIX) and (match is None or match.group(1) == "00001"):
            firsts.append(p)
    return firsts


def info_from_config(config: Mapping[str, Any], source: str = "config.json") -> ModelInfo:
    """A `ModelInfo` from a config alone: parameters by formula, scheme from its dtype."""
    facts = _facts(config, source)
    scheme, notes = _config_scheme(facts)
    return ModelInfo(
        source=source,
        facts=facts,
        parameters=parameter_count(facts),
        checkpoint_scheme=scheme,
        checkpoint_bytes=None,
        parameter_source=SOURCE_CONFIG,
        notes=tuple(notes) + _unknown_note(facts),
    )


def _task_info_from_config(config: Mapping[str, Any], source: str) -> ModelInfo:
    """A task model's config alone: its facts as far as they read, parameters by the decoder
    formula only where the config has a decoder's sizes (approximate for an encoder)."""
    facts = facts_without_formula(config)
    scheme, notes = _config_scheme(facts)
    if facts.num_attention_heads:
        params = parameter_count(facts)
        notes.append(
            f"parameters by a decoder's formula: approximate for a {facts.model_type or 'task'} model"
        )
    else:
        params = ParamCount(0, 0, 0, 0, 0, 0)
    return ModelInfo(source, facts, params, scheme, None, SOURCE_CONFIG, tuple(notes))


def _facts(config: Mapping[str, Any], source: str) -> ModelFacts:
    try:
        return facts_from_config(config)
    except ArchitectureError as exc:
        raise ModelInspectError(f"{source}: {exc}") from None


def _unknown_note(facts: ModelFacts) -> tuple[str, ...]:
    if facts.known:
        return ()
    return (
        f"model type {facts.model_type!r} has no formula of its own: the analytic count assumes a "
        "Llama-shaped decoder (gated MLP, plain attention)",
    )


def _config_scheme(facts: ModelFacts) -> tuple[str, list[str]]:
    if facts.quantization is not None:
        if facts.quantization.scheme is not None:
            return facts.quantization.scheme, []
        return "bf16", [
            f"quantization method {facts.quantization.method!r} is not modelled; sizes assume 16-bit weights"
        ]
    scheme = scheme_for_dtype(facts.dtype or "")
    if scheme is None:
        return "bf16", [f"config names no known dtype ({facts.dtype!r}); bf16 assumed"]
    return scheme, []


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelInspectError(f"{folder}/config.json cannot be read as JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelInspectError(f"{folder}/config.json is not a JSON object")
    return raw


def _inspect_folder(folder: Path) -> ModelInfo:
    config = _read_config(folder)
    found = detect_tasks(folder)
    towers = towers_from_config(config)
    task_model = workload_kind(found.tasks, towers, False) != LLM
    info = _inspect_weights(folder, config, task_model)
    return replace(info, tasks=found.tasks, task_evidence=found.evidence, towers=towers if task_model else ())


def _inspect_weights(folder: Path, config: Mapping[str, Any], task_model: bool) -> ModelInfo:
    if task_model:
        analytic = _task_info_from_config(config, str(folder))
    else:
        analytic = info_from_config(config, str(folder))
    names = [p.name for p in folder.iterdir() if p.is_file()]
    files, notes = _safetensors_files(folder, names)
    if not files:
        pickles = sorted(n for n in names if is_pickle(n))
        if task_model and not analytic.parameters.total:
            why = f"only pickle weights ({pickles[0]}…), never opened" if pickles else "no weight files"
            raise ModelInspectError(
                f"{folder}: {why}, and a {analytic.facts.model_type or 'task'} model's size does not "
                "follow from its config: pull its safetensors weights to plan it"
            )
        if pickles:
            notes.append(f"only pickle weights ({pickles[0]}…), not opened: parameters from the config")
        elif not notes:
            notes.append("no weight files: parameters from the config")
        return _with_notes(analytic, notes)
    try:
        tensors, data_bytes = read_safetensors_headers(files)
    except FormatError as exc:
        raise ModelInspectError(f"{exc}; pull the model again") from None
    facts = analytic.facts
    params = _count_tensors(tensors, facts)
    scheme, scheme_notes = _header_scheme(tensors, facts)
    notes.extend(scheme_notes)
    _check_index_total(folder, data_bytes, notes)
    analytic_total = analytic.parameters.total
    if facts.known and analytic_total and abs(params.total - analytic_total) > 0.02 * analytic_total:
        notes.append(
            f"the headers hold {params.total:,} parameters, the config's formula gives {analytic_total:,}"
            " (extra towers or layers the formula does not know)"
        )
    return ModelInfo(
        source=str(folder),
        facts=facts,
        parameters=params,
        checkpoint_scheme=scheme,
        checkpoint_bytes=data_bytes,
        parameter_source=SOURCE_SAFETENSORS,
        notes=tuple(notes) + (() if task_model else _unknown_note(facts)),
    )


def _with_notes(info: ModelInfo, notes: Iterable[str]) -> ModelInfo:
    return replace(info, notes=(*notes, *info.notes))


def _safetensors_files(folder: Path, names: list[str]) -> tuple[list[Path], list[str]]:
    """The weight files: those the index names when there is one, else every *.safetensors
    except adapters (and Mistral's `consolidated` copy when sharded files sit beside it)."""
    notes: list[str] = []
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            listed = sorted({str(v) for v in weight_map.values()})
        except (OSError, json.JSONDecodeError, AttributeError):
            listed = []
            notes.append(f"{INDEX_FILE} is unreadable; every *.safetensors file is counted")
        missing = [n for n in listed if not (folder / n).is_file()]
        if listed and missing:
            notes.append(
                f"{len(missing)} of the {len(listed)} shards the index names are missing ({missing[0]}…): "
                "parameters from the config; pull the model again for exact figures"
            )
            return [], notes
        if listed:
            return [folder / n for n in listed], notes
    found = sorted(n for n in names if n.endswith(SAFETENSORS_SUFFIX) and not n.startswith("adapter_"))
    if any(not n.startswith("consolidated") for n in found):
        found = [n for n in found if not n.startswith("consolidated")]
    return [folder / n for n in found], notes


def _check_index_total(folder: Path, data_bytes: int, notes: list[str]) -> None:
    index = folder / INDEX_FILE
    if not index.is_file():
        return
    try:
        total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
    except (OSError, json.JSONDecodeError, AttributeError):
        return
    if isinstance(total, int) and total != data_bytes:
        notes.append(f"the index's total_size is {total:,} bytes, the headers add up to {data_bytes:,}")


def _quant_bits(facts: ModelFacts) -> int:
    if facts.quantization is not None and facts.quantization.bits:
        return facts.quantization.bits
    return 4


def _count_tensors(tensors: list[TensorInfo], facts: ModelFacts) -> ParamCount:
    bits = _quant_bits(facts)
    total = embedding = lm_head = vector = expert = 0
    for t in tensors:
        name = t.name
        if name.endswith(_AUX_SUFFIXES):
            continue
        numel = t.numel
        if name.endswith(_PACKED_SUFFIXES) and t.dtype in ("I32", "U32"):
            numel = numel * 32 // bits
        total += numel
        if name.endswith(_EMBEDDING_SUFFIXES):
            embedding += numel
        elif name.endswith(_LM_HEAD_SUFFIXES):
            lm_head += numel
        elif len(t.shape) <= 1:
            vector += numel
        elif ".experts." in name:
            expert += numel
    return ParamCount(
        total=total,
        active=total - _inactive_experts(expert, facts),
        embedding=embedding,
        lm_head=lm_head,
        vector=vector,
        expert=expert,
    )


def _inactive_experts(expert: int, facts: ModelFacts) -> int:
    if facts.moe is None or facts.moe.num_experts <= 0:
        return 0
    used = min(facts.moe.experts_per_token, facts.moe.num_experts)
    return expert - expert * used // facts.moe.num_experts


_HEADER_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "fp8"}


def _header_scheme(tensors: list[TensorInfo], facts: ModelFacts) -> tuple[str, list[str]]:
    """The quantization config's scheme, else the dtype holding most matrix bytes."""
    if facts.quantization is not None:
        return _config_scheme(facts)
    by_dtype: dict[str, int] = defaultdict(int)
    for t in tensors:
        if len(t.shape) >= 2 and t.dtype in _HEADER_DTYPES:
            by_dtype[t.dtype] += t.nbytes
    if not by_dtype:
        return _config_scheme(facts)
    scheme = _HEADER_DTYPES[max(by_dtype, key=lambda k: by_dtype[k])]
    notes = []
    configured = scheme_for_dtype(facts.dtype or "")
    if configured is not None and configured != scheme:
        notes.append(f"config says {facts.dtype}, the weight files hold {scheme}: sized as {scheme}")
    return scheme, notes


# --- diffusers ----------------------------------------------------------------------------------


def _inspect_diffusers(folder: Path) -> ModelInfo:
    """The sum of a pipeline's components; the facts name the pipeline (it has no decoder's)."""
    try:
        read = read_pipeline(folder)
    except PipelineReadError as exc:
        raise ModelInspectError(str(exc)) from None
    found = detect_tasks(folder)
    pipeline = read.facts.pipeline
    facts = facts_without_formula({"architectures": [pipeline], "model_type": "diffusers"})
    components = []
    tensors: list[TensorInfo] = []
    for part in read.components:
        params = _count_tensors(list(part.tensors), facts)
        scheme, _ = _header_scheme(list(part.tensors), facts)
        components.append(Component(part.name, part.class_name, params.total, part.data_bytes, scheme))
        tensors.extend(part.tensors)
    scheme, _ = _header_scheme(tensors, facts)
    schemes = sorted({c.scheme for c in components})
    notes = list(read.notes)
    if len(schemes) > 1:
        notes.append(f"the components hold {', '.join(schemes)} weights: sized as {scheme} when converted")
    return ModelInfo(
        source=str(folder),
        facts=facts,
        parameters=_count_tensors(tensors, facts),
        checkpoint_scheme=scheme,
        checkpoint_bytes=sum(c.bytes for c in components),
        parameter_source=SOURCE_SAFETENSORS,
        notes=tuple(notes),
        tasks=found.tasks,
        task_evidence=found.evidence,
        components=tuple(components),
        diffusion=read.facts,
    )


# --- GGUF ---------------------------------------------------------------------------------------

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
_GGUF_MODEL_TYPES = {
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "qwen2moe": "qwen2_moe",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3_moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
    "deepseek2": "deepseek_v2",
}


def _inspect_gguf(path: Path) -> ModelInfo:
    import gguf

    shards = _gguf_shards(path)
    try:
        readers = [gguf.GGUFReader(str(p)) for p in shards]
    except (OSError, ValueError) as exc:
        raise ModelInspectError(f"{path}: not a readable GGUF file ({exc})") from None
    fields = {
        name: field.contents()
        for name, field in readers[0].fields.items()
        if not name.startswith("tokenizer.")
    }
    tokens_field = readers[0].fields.get("tokenizer.ggml.tokens")
    tensors = [t for r in readers for t in r.tensors]
    names = {t.name for t in tensors}
    arch = str(fields.get("general.architecture", ""))
    if not arch:
        raise ModelInspectError(f"{path}: GGUF metadata has no general.architecture")
    shapes = {t.name: [int(d) for d in t.shape] for t in tensors}
    vocab = len(tokens_field.data) if tokens_field is not None else max(shapes.get("token_embd.weight", [0]))
    config = _gguf_config(arch, fields, vocab, tie="output.weight" not in names)
    facts = _facts(config, str(path))
    total = embedding = lm_head = vector = expert = nbytes = 0
    for t in tensors:
        numel, size = int(t.n_elements), int(t.n_bytes)
        total += numel
        nbytes += size
        if t.name == "token_embd.weight":
            embedding += numel
        elif t.name == "output.weight":
            lm_head += numel
        elif len([d for d in t.shape if int(d) > 1]) <= 1:
            vector += numel
        elif "_exps." in t.name:
            expert += numel
    params = ParamCount(
        total=total,
        active=total - _inactive_experts(expert, facts),
        embedding=embedding,
        lm_head=lm_head,
        vector=vector,
        expert=expert,
    )
    scheme = _gguf_file_scheme(fields.get("general.file_type"))
    notes = [f"{len(shards)} GGUF shards"] if len(shards) > 1 else []
    return ModelInfo(
        source=str(path),
        facts=facts,
        parameters=params,
        checkpoint_scheme=scheme,
        checkpoint_bytes=nbytes,
        parameter_source=SOURCE_GGUF,
        notes=tuple(notes) + _unknown_note(facts),
    )


def _gguf_shards(path: Path) -> list[Path]:
    match = _SHARD.search(path.name)
    if not match:
        return [path]
    count = int(match.group(2))
    stem = path.name[: match.start()]
    shards = [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise ModelInspectError(f"{path}: GGUF shard {missing[0]} is missing; download every shard")
    return shards


def _first(value: Any) -> Any:
    """GGUF stores some per-layer values as arrays (head counts of hybrid models): take the largest."""
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int | float)]
        return max(numbers) if numbers else None
    return value


def _gguf_config(arch: str, fields: Mapping[str, Any], vocab: int, tie: bool) -> dict[str, Any]:
    def get(key: str) -> Any:
        return _first(fields.get(f"{arch}.{key}"))

    heads = get("attention.head_count")
    experts = get("expert_count") or 0
    model_type = _GGUF_MODEL_TYPES.get(arch, arch)
    if model_type == "llama" and experts:
        model_type = "mixtral"
    config: dict[str, Any] = {
        "architectures": [f"gguf:{arch}"],
        "model_type": model_type,
        "num_hidden_layers": get("block_count"),
        "hidden_size": get("embedding_length"),
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": get("attention.head_count_kv") or heads,
        "vocab_size": vocab,
        "max_position_embeddings": get("context_length"),
        "tie_word_embeddings": tie,
        "sliding_window": get("attention.sliding_window"),
    }
    key_length = get("attention.key_length")
    rope_dims = get("rope.dimension_count")
    kv_lora = get("attention.kv_lora_rank")
    if kv_lora:
        config.update(
            kv_lora_rank=kv_lora,
            q_lora_rank=get("attention.q_lora_rank"),
            qk_rope_head_dim=rope_dims,
            qk_nope_head_dim=(key_length or 0) - (rope_dims or 0),
            v_head_dim=get("attention.value_length"),
        )
    elif key_length:
        config["head_dim"] = key_length
    if experts:
        config.update(
            num_local_experts=experts,
            num_experts_per_tok=get("expert_used_count"),
            moe_intermediate_size=get("expert_feed_forward_length") or get("feed_forward_length"),
            n_shared_experts=get("expert_shared_count") or 0,
            first_k_dense_replace=get("leading_dense_block_count") or 0,
            shared_expert_intermediate_size=get("expert_shared_feed_forward_length") or 0,
        )
    if model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        config["use_sliding_window"] = False
    return {k: v for k, v in config.items() if v is not None}


def _gguf_file_scheme(file_type: Any) -> str:
    import gguf

    name = None
    if isinstance(file_type, int):
        try:
            name = gguf.LlamaFileType(file_type).name
        except ValueError:
            name = None
    if name is None:
        return "gguf-unknown"
    return "gguf-" + name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
