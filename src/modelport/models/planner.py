"""The GPU-fit planner: which hardware a model fits, at what context and concurrency, and cost.

`check_fit(model, option, request)` sizes one instance; `plan(model, request, options)` sizes a
catalog and picks, per accelerator, the smallest instance that serves the requested concurrency
(or the smallest that fits at all), and overall the cheapest per hour that serves it. Both are
pure: `model` comes from `inspect_model` (or `info_from_config`), options from `hardware`.

Memory model, per device of an instance of t GPUs (t-way tensor parallel):
- usable = memory × gpu-memory-utilization (0.9, vLLM's default);
- weights = checkpoint bytes / t (exact for the checkpoint's own format, by formula for another
  scheme: see quantization.py);
- engine overhead (vLLM): 1.5 GiB fixed (CUDA context, cuBLAS and NCCL workspaces, CUDA
  graphs, allocator slack) + the activation peak of vLLM's profiling pass, modelled as
  ``T × (4h + 3i/t) × a`` for T = 8192 batched tokens (h hidden size, i the MLP width, for
  MoE the k routed experts' and the shared ones' widths, a the activation bytes) + the
  sampler's logits, ``2 × 256 × vocab × 4`` bytes;
- on the local CPU the builtin engine runs instead: its runtime (Python, torch, transformers,
  tokenizer, server) measured at 450-520 MiB in this repository (docs/architecture.md), 520 MiB
  taken, + the same activation term for its 2048 batched tokens and 64 sequences;
- KV budget = usable − weights − overhead; a sequence of C tokens needs
  `kv_bytes_for_context` (sliding-window layers hold their window only, KV heads split over t);
- max sequences = floor(KV budget / bytes per sequence); it fits when that is at least 1.

Throughput model (decode, the part of serving that output tokens pay for), per step of a batch
of B = min(concurrency, max sequences) sequences, each half-way through its context:
- memory time = (weights read + KV read) per device / (bandwidth × 0.6). The weights read are
  all but the input embedding (a lookup), with only the experts the batch touches for MoE:
  E × (1 − (1 − k/E)^B) of E per layer;
- compute time = 2 × active parameters × B / t / (dense bf16 TFLOPs × 0.4, doubled for FP8
  weights on FP8 hardware);
- step = the larger; tokens/s = B / step; $ per 1M output tokens = $/h / (tokens/s × 3600) × 1e6.
Tensor-parallel communication is not modelled, so multi-GPU figures are optimistic.

Task models that are not LLMs (encoders, encoder-decoders, diffusion pipelines: `ModelInfo.workload`)
have no context to plan: they fit when their weights, overhead and the working memory of one
batch do (task_plan.py has the model); `max_sequences` is then the batch items that fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelport.models.architecture import ModelFacts, kv_bytes_for_context, kv_bytes_per_token
from modelport.models.hardware import HardwareOption
from modelport.models.inspect import ModelInfo
from modelport.models.quantization import (
    KV_CACHE_DTYPES,
    SCHEMES,
    Scheme,
    gguf_scheme,
    kv_dtype_bytes,
    resolve_scheme,
)
from modelport.models.task_plan import (
    DIFFUSION,
    LLM,
    TaskShape,
    task_hardware_problem,
    task_overhead,
    task_scheme,
    task_shape,
)

GIB = 2**30
MIB = 2**20
GPU_MEMORY_UTILIZATION = 0.9
VLLM_FIXED_OVERHEAD = int(1.5 * GIB)
VLLM_MAX_NUM_BATCHED_TOKENS = 8192
VLLM_MAX_NUM_SEQS = 256
BUILTIN_RUNTIME = 520 * MIB
BUILTIN_MAX_NUM_BATCHED_TOKENS = 2048
BUILTIN_MAX_NUM_SEQS = 64
BUILTIN_BLOCK_SIZE = 16
BANDWIDTH_EFFICIENCY = 0.6
COMPUTE_EFFICIENCY = 0.4


@dataclass(frozen=True)
class PlanRequest:
    """What to plan for. `context` None: the model's own maximum; `quantization` None: the
    checkpoint's format; `kv_cache_dtype` auto (the activation dtype) or fp8. Task models only:
    `batch` None: 32 inputs (1 image for diffusion); `resolution` (width, height) of the images
    drawn, None: the pipeline's own default."""

    context: int | None = None
    concurrency: int = 1
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    batch: int | None = None
    resolution: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.batch is not None and self.batch < 1:
            raise ValueError("batch must be at least 1")
        if self.resolution is not None and min(self.resolution) < 8:
            raise ValueError("resolution must be at least 8×8 pixels")
        if self.context is not None and self.context < 1:
            raise ValueError("context must be at least 1 token")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(
                f"kv_cache_dtype must be {' or '.join(KV_CACHE_DTYPES)}, not {self.kv_cache_dtype!r}"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.quantization is not None:
            resolve_scheme(self.quantization)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes on one device of the instance."""

    usable: int
    weights: int
    overhead: int
    kv_budget: int  # usable − weights − overhead (negative when the weights do not fit)
    kv_per_sequence: int  # one sequence of the context


@dataclass(frozen=True)
class Throughput:
    batch: int
    tokens_per_s: float
    bound: str  # "memory" or "compute"
    cost_per_million_tokens: float


@dataclass(frozen=True)
class OptionFit:
    option: HardwareOption
    engine: str  # "vllm" on GPUs, "builtin" on the local CPU
    tensor_parallel: int
    context: int
    fits: bool
    meets_concurrency: bool
    max_sequences: int
    reason: str  # a sentence: why it does not fit, or how many sequences it holds
    summary: str  # the same in a few words, for a table column ("" when it serves the request)
    memory: MemoryBreakdown
    vllm_flags: list[str] = field(default_factory=list)
    builtin_flags: list[str] = field(default_factory=list)  # empty: the builtin engine cannot serve this
    throughput: Throughput | None = None
    notes: tuple[str, ...] = ()
    smaller: str = ""  # in a plan's rows: why the next smaller size of this accelerator was not picked
    workload: str = LLM  # llm, encoder, seq2seq or diffusion (task_plan.py)
    batch: int = 0  # task models: the batch sized (memory.kv_per_sequence is one item's bytes)


@dataclass(frozen=True)
class Plan:
    model: ModelInfo
    request: PlanRequest
    scheme: str
    context: int
    weights_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int  # the whole sequence, all GPUs together
    rows: tuple[OptionFit, ...]  # one per accelerator: the size picked for it
    evaluated: tuple[OptionFit, ...]  # every option sized
    cheapest: OptionFit | None  # the lowest $/h that serves the concurrency (ties: lower $/1M tokens)
    notes: tuple[str, ...] = ()
    task: TaskShape | None = None  # task models: the batch at the checkpoint's dtype


def request_scheme(model: ModelInfo, request: PlanRequest) -> Scheme:
    """The weight format planned: the one asked for, else the checkpoint's."""
    if request.quantization is not None:
        return resolve_scheme(request.quantization)
    name = model.checkpoint_scheme
    if name in SCHEMES:
        return SCHEMES[name]
    # a GGUF type the table does not list: the file's own average bits
    bits = (model.checkpoint_bytes or 0) * 8 / max(model.parameters.total, 1)
    return gguf_scheme(name, bits or 16.0)


def weights_bytes(model: ModelInfo, scheme: Scheme) -> int:
    """Exact for the checkpoint's own format; by formula (quantization.py) for another one."""
    if scheme.name == model.checkpoint_scheme and model.checkpoint_bytes:
        return model.checkpoint_bytes
    return _formula_bytes(model, scheme)


def _formula_bytes(model: ModelInfo, scheme: Scheme) -> int:
    p = model.parameters
    return math.ceil(
        p.linear * scheme.linear_bits / 8
        + (p.embedding + p.lm_head) * scheme.embedding_bits / 8
        + p.vector * scheme.vector_bytes
    )


def plan_context(model: ModelInfo, request: PlanRequest) -> tuple[int, list[str]]:
    limit = model.facts.max_position_embeddings
    if request.context is None:
        return limit, []
    if request.context > limit:
        return limit, [f"context {request.context:,} is above the model's {limit:,} positions; capped"]
    return request.context, []


def engine_overhead(facts: ModelFacts, option: HardwareOption, tensor_parallel: int, act_bytes: int) -> int:
    """Bytes per device besides weights and KV cache (the model is in the module docstring)."""
    if option.is_cpu:
        return BUILTIN_RUNTIME + _activation_bytes(
            facts, BUILTIN_MAX_NUM_BATCHED_TOKENS, 1, act_bytes, BUILTIN_MAX_NUM_SEQS
        )
    return VLLM_FIXED_OVERHEAD + _activation_bytes(
        facts, VLLM_MAX_NUM_BATCHED_TOKENS, tensor_parallel, act_bytes, VLLM_MAX_NUM_SEQS
    )


def _activation_bytes(facts: ModelFacts, tokens: int, tp: int, act_bytes: int, logit_rows: int) -> int:
    width = facts.intermediate_size
    if facts.moe is not None:
        moe = facts.moe
        width = max(
            width, moe.experts_per_token * moe.expert_intermediate_size + moe.shared_intermediate_size
        )
    per_token = 4 * facts.hidden_size + 3 * width // tp
    return tokens * per_token * act_bytes + 2 * logit_rows * facts.vocab_size * 4


def _builtin_kv_per_sequence(facts: ModelFacts, context: int, kv_bytes: int) -> int:
    """The builtin engine's pool: every layer keeps K and V for every token, in blocks of 16."""
    tokens = -(-context // BUILTIN_BLOCK_SIZE) * BUILTIN_BLOCK_SIZE
    return 2 * facts.num_layers * facts.num_kv_heads * facts.head_dim * kv_bytes * tokens


def _tp_problem(facts: ModelFacts, tp: int) -> str | None:
    heads, kv = facts.num_attention_heads, facts.num_kv_heads
    if heads % tp:
        return f"{heads} attention heads do not split over {tp} GPUs"
    if facts.mla is None and kv % tp and tp % kv:
        return f"{kv} KV heads do not split over {tp} GPUs"
    return None


def _hardware_problem(
    scheme: Scheme, request: PlanRequest, option: HardwareOption, facts: ModelFacts
) -> str | None:
    acc = option.accelerator
    if option.is_cpu:
        if scheme.builtin_dtype is None:
            return f"the builtin CPU engine serves bf16/fp16/fp32 weights, not {scheme.label}"
        if request.kv_cache_dtype != "auto":
            return "the builtin CPU engine has no FP8 KV cache"
        if facts.mla is not None:
            return "the builtin CPU engine has no MLA attention"
        return None
    cc = acc.compute_capability
    if cc is not None and cc < scheme.min_compute_capability:
        return f"vLLM has no {scheme.label} kernels for {acc.name} (compute capability {cc})"
    if request.kv_cache_dtype == "fp8" and cc is not None and cc < 8.0:
        return f"vLLM has no FP8 KV cache on {acc.name}"
    return None


def check_fit(model: ModelInfo, option: HardwareOption, request: PlanRequest) -> OptionFit:
    """Size one instance for the request: fit, max sequences, flags, throughput and cost."""
    if model.workload != LLM:
        return _task_fit(model, option, request)
    facts = model.facts
    scheme = request_scheme(model, request)
    context, notes = plan_context(model, request)
    tp = 1 if option.is_cpu else option.count
    kv_bytes = kv_dtype_bytes(request.kv_cache_dtype, scheme)
    total_weights = weights_bytes(model, scheme)
    if option.is_cpu:
        builtin_context = min(context, facts.sliding_window or context)
        if builtin_context < context:
            notes.append(
                f"the builtin engine caps the context at the sliding window ({builtin_context:,} tokens)"
            )
            context = builtin_context
        per_sequence = _builtin_kv_per_sequence(facts, context, kv_bytes)
    else:
        per_sequence = kv_bytes_for_context(facts, context, kv_bytes, tp)
    usable = int(option.accelerator.memory_bytes * request.gpu_memory_utilization)
    weights = -(-total_weights // tp)
    overhead = engine_overhead(facts, option, tp, scheme.compute_bytes)
    budget = usable - weights - overhead
    memory = MemoryBreakdown(usable, weights, overhead, budget, per_sequence)
    problem = _tp_problem(facts, tp) or _hardware_problem(scheme, request, option, facts)
    max_seqs = 0 if problem or budget <= 0 else budget // per_sequence
    fits = problem is None and max_seqs >= 1
    meets = fits and max_seqs >= request.concurrency
    reason = problem or _memory_reason(option, memory, context, max_seqs, request.concurrency)
    summary = problem or _summary(memory, max_seqs, request.concurrency)
    vllm_flags: list[str] = []
    builtin_flags: list[str] = []
    throughput = None
    if fits:
        notes.extend(_scheme_notes(model, scheme))
        if not option.is_cpu:
            vllm_flags = _vllm_flags(model, scheme, option, request, context, tp)
        builtin_flags = _builtin_flags(
            scheme, option, request, context, memory, max_seqs, facts.mla is not None
        )
        throughput = _throughput(
            model, scheme, option, request, context, tp, kv_bytes, total_weights, max_seqs
        )
    return OptionFit(
        option=option,
        engine="builtin" if option.is_cpu else "vllm",
        tensor_parallel=tp,
        context=context,
        fits=fits,
        meets_concurrency=meets,
        max_sequences=max_seqs,
        reason=reason,
        summary=summary,
        memory=memory,
        vllm_flags=vllm_flags,
        builtin_flags=builtin_flags,
        throughput=throughput,
        notes=tuple(notes),
    )


def model_task_shape(model: ModelInfo, act_bytes: int, request: PlanRequest) -> TaskShape:
    vocab = model.facts.vocab_size
    return task_shape(
        model.workload,
        model.towers,
        model.tasks,
        vocab,
        model.diffusion,
        act_bytes,
        request.batch,
        request.resolution,
    )


def _task_fit(model: ModelInfo, option: HardwareOption, request: PlanRequest) -> OptionFit:
    """A task model on one device: weights + overhead + one batch's working memory."""
    kind = model.workload
    scheme = task_scheme(kind, request_scheme(model, request), request.quantization is not None, option)
    shape = model_task_shape(model, scheme.compute_bytes, request)
    usable = int(option.accelerator.memory_bytes * request.gpu_memory_utilization)
    weights = weights_bytes(model, scheme)
    overhead = task_overhead(option, BUILTIN_RUNTIME)
    budget = usable - weights - overhead
    memory = MemoryBreakdown(usable, weights, overhead, budget, shape.item_bytes)
    problem = task_hardware_problem(scheme)
    most = 0 if problem or budget <= 0 else budget // shape.item_bytes
    fits = problem is None and most >= shape.batch
    notes = [f"weights loaded as {scheme.label}"] if scheme.name != model.checkpoint_scheme else []
    if option.count > 1:
        notes.append(f"the task pipelines run on one of the {option.count} GPUs")
    return OptionFit(
        option=option,
        engine="builtin",
        tensor_parallel=1,
        context=shape.positions,
        fits=fits,
        meets_concurrency=fits,
        max_sequences=most,
        reason=problem or _task_reason(option.label, memory, shape, most),
        summary=problem or _task_summary(memory, shape, most),
        memory=memory,
        notes=tuple(notes),
        workload=kind,
        batch=shape.batch,
    )


def _task_reason(where: str, m: MemoryBreakdown, shape: TaskShape, most: int) -> str:
    """As the LLM reasons read: why it does not fit, or what the batch takes."""
    if m.weights + m.overhead > m.usable:
        return (
            f"weights {fmt_bytes(m.weights)} + overhead {fmt_bytes(m.overhead)} > "
            f"{fmt_bytes(m.usable)} usable on {where}"
        )
    need, each = shape.batch * shape.item_bytes, f"{fmt_bytes(shape.item_bytes)} each"
    if most >= shape.batch:
        return (
            f"a batch of {shape.batch:,} × {shape.what} takes {fmt_bytes(need)} ({each}) "
            f"of {fmt_bytes(m.kv_budget)}"
        )
    text = (
        f"no room for a batch of {shape.batch:,} × {shape.what}: {fmt_bytes(m.kv_budget)} left after "
        f"weights and overhead < {fmt_bytes(need)} ({each}) on {where}"
    )
    if shape.kind != DIFFUSION and most >= 1:
        text += f"; it holds a batch of {most:,} (add --max-batch {most} to the model's args)"
    return text


def _task_summary(m: MemoryBreakdown, shape: TaskShape, most: int) -> str:
    if m.weights + m.overhead > m.usable:
        return f"needs {fmt_bytes(m.weights + m.overhead)} > {fmt_bytes(m.usable)}"
    if most < shape.batch:
        return f"batch {fmt_bytes(shape.batch * shape.item_bytes)} > {fmt_bytes(max(m.kv_budget, 0))}"
    return ""


def fmt_bytes(n: int | float) -> str:
    """Decimal units, as checkpoint sizes are quoted: 16.1 GB, 131 MB."""
    if abs(n) >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if abs(n) >= 1e6:
        return f"{n / 1e6:.0f} MB"
    return f"{n / 1e3:.0f} kB"


def _memory_reason(
    option: HardwareOption, m: MemoryBreakdown, context: int, max_seqs: int, wanted: int
) -> str:
    where = option.label
    per_device = " per GPU" if option.count > 1 else ""
    if m.weights + m.overhead > m.usable:
        return (
            f"weights {fmt_bytes(m.weights)} + overhead {fmt_bytes(m.overhead)}{per_device} > "
            f"{fmt_bytes(m.usable)} usable on {where}"
        )
    if max_seqs < 1:
        return (
            f"no room for one {context:,}-token sequence: KV budget {fmt_bytes(m.kv_budget)}{per_device} < "
            f"{fmt_bytes(m.kv_per_sequence)} per sequence on {where}"
        )
    text = f"{max_seqs:,} × {context:,}-token sequences in {fmt_bytes(m.kv_budget)}{per_device} of KV cache"
    if max_seqs < wanted:
        text += f", fewer than the {wanted:,} asked for"
    return text


def _summary(m: MemoryBreakdown, max_seqs: int, wanted: int) -> str:
    if m.weights + m.overhead > m.usable:
        return f"needs {fmt_bytes(m.weights + m.overhead)} > {fmt_bytes(m.usable)}"
    if max_seqs < 1:
        return f"KV {fmt_bytes(max(m.kv_budget, 0))} < {fmt_bytes(m.kv_per_sequence)}/seq"
    if max_seqs < wanted:
        return f"{max_seqs:,} of {wanted:,} seqs"
    return ""


def _scheme_notes(model: ModelInfo, scheme: Scheme) -> list[str]:
    notes = []
    if scheme.gguf:
        notes.append(
            "GGUF: llama.cpp serves it (llama-server -m FILE -c CONTEXT -ngl 999); vLLM's GGUF loader is "
            "experimental and wants --tokenizer from the original model"
        )
    checkpoint = model.checkpoint_scheme
    online = scheme.online and checkpoint in ("bf16", "fp16", "fp32")
    if scheme.name != checkpoint and not scheme.float_weights and not online:
        notes.append(scheme.note or f"needs a {scheme.label} checkpoint of this model")
    return notes


def _vllm_flags(
    model: ModelInfo, scheme: Scheme, option: HardwareOption, request: PlanRequest, context: int, tp: int
) -> list[str]:
    flags = [
        "--max-model-len",
        str(context),
        "--gpu-memory-utilization",
        f"{request.gpu_memory_utilization:g}",
        "--tensor-parallel-size",
        str(tp),
        "--kv-cache-dtype",
        request.kv_cache_dtype,
    ]
    checkpoint = model.checkpoint_scheme
    if scheme.online and scheme.name != checkpoint and checkpoint in ("bf16", "fp16", "fp32"):
        flags += ["--quantization", str(scheme.vllm_quantization)]
    if scheme.float_weights:
        dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[scheme.name]
        if dtype == "bfloat16" and not option.accelerator.bf16:
            dtype = "float16"  # T4 (Turing) has no bf16; vLLM computes in fp16
        if dtype != model.facts.dtype:
            flags += ["--dtype", dtype]
    elif not option.accelerator.bf16:
        flags += ["--dtype", "float16"]
    if request.concurrency > VLLM_MAX_NUM_SEQS:
        flags += ["--max-num-seqs", str(request.concurrency)]
    return flags


def _builtin_flags(
    scheme: Scheme,
    option: HardwareOption,
    request: PlanRequest,
    context: int,
    m: MemoryBreakdown,
    max_seqs: int,
    mla: bool,
) -> list[str]:
    """Flags for modelport's builtin engine (one device). On a GPU it gets the whole KV budget;
    on the CPU, whose RAM the machine shares, only what the requested concurrency needs."""
    if option.count != 1 or scheme.builtin_dtype is None or request.kv_cache_dtype != "auto" or mla:
        return []
    if option.is_cpu:
        kv = min(m.kv_budget, m.kv_per_sequence * min(request.concurrency, max_seqs))
    else:
        kv = m.kv_budget
    return ["--max-model-len", str(context), "--kv-cache-memory", f"{kv}B", "--dtype", scheme.builtin_dtype]


def _throughput(
    model: ModelInfo,
    scheme: Scheme,
    option: HardwareOption,
    request: PlanRequest,
    context: int,
    tp: int,
    kv_bytes: int,
    total_weights: int,
    max_seqs: int,
) -> Throughput:
    facts, p = model.facts, model.parameters
    batch = max(1, min(request.concurrency, max_seqs))
    bytes_per_param = total_weights / max(p.total, 1)
    embedding_lookup = 0 if facts.tie_word_embeddings else p.embedding
    touched = 1.0
    if facts.moe is not None and facts.moe.num_experts > 0:
        k, e = facts.moe.experts_per_token, facts.moe.num_experts
        touched = min(1.0, (1 - (1 - k / e) ** batch))
    read_params = p.total - embedding_lookup - p.expert + p.expert * touched
    weights_read = read_params * bytes_per_param / tp
    if option.is_cpu:
        kv_read = _builtin_kv_per_sequence(facts, max(context // 2, 1), kv_bytes) * batch
    else:
        kv_read = kv_bytes_for_context(facts, max(context // 2, 1), kv_bytes, tp) * batch
    acc = option.accelerator
    memory_s = (weights_read + kv_read) / (acc.bandwidth_gbps * 1e9 * BANDWIDTH_EFFICIENCY)
    tflops = acc.bf16_tflops * (2 if scheme.name == "fp8" and acc.fp8 else 1)
    compute_s = 2 * (p.active - embedding_lookup) * batch / tp / (tflops * 1e12 * COMPUTE_EFFICIENCY)
    step = max(memory_s, compute_s)
    tokens_per_s = batch / step
    cost = option.price_per_hour / (tokens_per_s * 3600) * 1e6
    return Throughput(batch, tokens_per_s, "memory" if memory_s >= compute_s else "compute", cost)


def _sort_key(fit: OptionFit) -> tuple[float, float]:
    cost = fit.throughput.cost_per_million_tokens if fit.throughput else math.inf
    return fit.option.price_per_hour, cost


def plan(model: ModelInfo, request: PlanRequest, options: Sequence[HardwareOption]) -> Plan:
    """Size every option; per accelerator, pick the smallest instance that serves the concurrency,
    else the smallest that fits, else the largest (to show why none does)."""
    scheme = request_scheme(model, request)
    task = model_task_shape(model, scheme.compute_bytes, request) if model.workload != LLM else None
    context, notes = plan_context(model, request) if task is None else (task.positions, [])
    if task is not None and (request.context is not None or request.kv_cache_dtype != "auto"):
        notes.append(f"{task.kind} models have no context or KV cache to plan: sized for a batch instead")
    kv_bytes = kv_dtype_bytes(request.kv_cache_dtype, scheme)
    evaluated = [check_fit(model, option, request) for option in options]
    groups: dict[str, list[OptionFit]] = {}
    for fit in evaluated:
        groups.setdefault(fit.option.instance_type, []).append(fit)
    rows = [_pick_row(sorted(fits, key=lambda f: f.option.count)) for fits in groups.values()]
    serving = [f for f in evaluated if f.meets_concurrency]
    return Plan(
        model=model,
        request=request,
        scheme=scheme.name,
        context=context,
        weights_bytes=weights_bytes(model, scheme),
        kv_bytes_per_token=kv_bytes_per_token(model.facts, kv_bytes) if task is None else 0,
        kv_bytes_per_sequence=kv_bytes_for_context(model.facts, context, kv_bytes) if task is None else 0,
        rows=tuple(rows),
        evaluated=tuple(evaluated),
        cheapest=min(serving, key=_sort_key) if serving else None,
        notes=tuple(notes) + model.notes,
        task=task,
    )


def _pick_row(fits: list[OptionFit]) -> OptionFit:
    chosen = next((f for f in fits if f.meets_concurrency), None)
    chosen = chosen or next((f for f in fits if f.fits), None) or fits[-1]
    smaller = [f for f in fits if f.option.count < chosen.option.count]
    if not smaller or not chosen.fits:
        return chosen
    last = smaller[-1]
    return replace(
        chosen,
        reason=f"{chosen.reason}; on {last.option.count}×: {last.reason}",
        smaller=f"{last.option.count}×: {last.summary}",
    )


def fit_to_dict(fit: OptionFit) -> dict[str, Any]:
    t = fit.throughput
    return {
        "instance_type": fit.option.instance_type,
        "instance_size": fit.option.instance_size,
        "hardware": fit.option.label,
        "engine": fit.engine,
        "tensor_parallel": fit.tensor_parallel,
        "context": fit.context,
        "fits": fit.fits,
        "meets_concurrency": fit.meets_concurrency,
        "max_sequences": fit.max_sequences,
        "reason": fit.reason,
        "summary": fit.summary,
        "price_per_hour": fit.option.price_per_hour,
        "memory_per_device": {
            "usable_bytes": fit.memory.usable,
            "weights_bytes": fit.memory.weights,
            "overhead_bytes": fit.memory.overhead,
            "kv_budget_bytes": fit.memory.kv_budget,
            "kv_bytes_per_sequence": fit.memory.kv_per_sequence,
        },
        "throughput": None
        if t is None
        else {
            "batch": t.batch,
            "output_tokens_per_s": round(t.tokens_per_s, 1),
            "bound": t.bound,
            "usd_per_million_output_tokens": round(t.cost_per_million_tokens, 4),
        },
        "vllm_flags": fit.vllm_flags,
        "builtin_flags": fit.builtin_flags,
        "notes": list(fit.notes),
        "workload": fit.workload,
        # task models: the batch sized and one item's working memory (the kv_* fields hold the same)
        "batch": fit.batch if fit.workload != LLM else None,
        "bytes_per_batch_item": fit.memory.kv_per_sequence if fit.workload != LLM else None,
    }


def plan_to_dict(p: Plan) -> dict[str, Any]:
    facts, params = p.model.facts, p.model.parameters
    return {
        "model": {
            "source": p.model.source,
            "architecture": facts.architecture,
            "model_type": facts.model_type,
            "parameter_source": p.model.parameter_source,
            "parameters": params.total,
            "active_parameters": params.active,
            "checkpoint_scheme": p.model.checkpoint_scheme,
            "checkpoint_bytes": p.model.checkpoint_bytes,
            "layers": facts.num_layers,
            "hidden_size": facts.hidden_size,
            "attention": facts.attention_kind,
            "attention_heads": facts.num_attention_heads,
            "kv_heads": facts.num_kv_heads,
            "head_dim": facts.head_dim,
            "max_position_embeddings": facts.max_position_embeddings,
            "sliding_window": facts.sliding_window,
            "sliding_layers": facts.sliding_layers,
            "experts": facts.moe.num_experts if facts.moe else None,
            "experts_per_token": facts.moe.experts_per_token if facts.moe else None,
        },
        "request": {
            "context": p.context,
            "concurrency": p.request.concurrency,
            "quantization": p.scheme,
            "kv_cache_dtype": p.request.kv_cache_dtype,
            "gpu_memory_utilization": p.request.gpu_memory_utilization,
        },
        "workload": p.model.workload,
        "tasks": list(p.model.tasks),
        "task_evidence": p.model.task_evidence,
        "components": [
            {
                "name": c.name,
                "class": c.class_name,
                "parameters": c.parameters,
                "bytes": c.bytes,
                "scheme": c.scheme,
            }
            for c in p.model.components
        ],
        "towers": [
            {"name": t.name, "layers": t.layers, "hidden_size": t.hidden_size, "positions": t.positions}
            for t in p.model.towers
        ],
        "batch": None
        if p.task is None
        else {"size": p.task.batch, "item": p.task.what, "bytes_per_item": p.task.item_bytes},
        "weights_bytes": p.weights_bytes,
        "kv_bytes_per_token": p.kv_bytes_per_token,
        "kv_bytes_per_sequence": p.kv_bytes_per_sequence,
        "rows": [fit_to_dict(f) for f in p.rows],
        "evaluated": [fit_to_dict(f) for f in p.evaluated],
        "cheapest": fit_to_dict(p.cheapest) if p.cheapest else None,
        "notes": list(p.notes),
    }
