"""What in an endpoint's spec can run code of the caller's choosing on the host.

A replica is a process on this machine: its command, its environment and its engine's flags are
as good as a shell to whoever writes them. `image.custom.command` is a command by definition;
`image.<engine>.enginePython` names the interpreter to run; an environment variable such as
LD_PRELOAD, PYTHONPATH or HF_ENDPOINT changes what code or weights a process loads; an engine
flag such as vLLM's --worker-extension-cls or --trust-remote-code imports code. Writing any of
them needs the `host` scope (control/services/endpoint_service.py). The rule is an allow-list: the environment
names and engine flags below only tune a known engine; everything else counts as host code.

Pure: `host_surface` lists the parts of a spec that need the scope, keyed by where they are,
so an update needs the scope only when it changes one of them; `launch_refusal` is the
installation's `--allow-custom-commands` switch, which the control loop checks before each launch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelport.spec import vllm_image
from modelport.spec.endpoint import EndpointSpec, ImageKind
from modelport.spec.engine_flags import flag_name

# Names no library reads as a path, a URL or code to load: tokens, threading, offline switches.
SAFE_ENV = frozenset(
    {
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_DISABLE_TELEMETRY",
        "HF_HUB_DISABLE_PROGRESS_BARS",
        "DO_NOT_TRACK",
        "TOKENIZERS_PARALLELISM",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "PYTORCH_CUDA_ALLOC_CONF",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "TZ",
        "LANG",
        "LC_ALL",
        "MODELPORT_LOG_LEVEL",
        "MODELPORT_TORCH_THREADS",
        "VLLM_LOGGING_LEVEL",
        "VLLM_NO_USAGE_STATS",
        "VLLM_DO_NOT_TRACK",
    }
)

# Flags that size or tune an engine (normalised: `--max_model_len` is `--max-model-len`).
SAFE_ARGS: dict[ImageKind, frozenset[str]] = {
    ImageKind.HUGGINGFACE: frozenset(
        {
            "--dtype",
            "--device",
            "--kv-cache-memory",
            "--block-size",
            "--max-num-seqs",
            "--max-num-batched-tokens",
            "--max-model-len",
            "--max-body-bytes",
            "--any-model-name",
            "--api",
            "--log-level",
        }
    ),
    ImageKind.VLLM: frozenset(
        {
            "--max-model-len",
            "--max-num-seqs",
            "--max-num-batched-tokens",
            "--gpu-memory-utilization",
            "--kv-cache-memory",
            "--dtype",
            "--kv-cache-dtype",
            "--quantization",
            "--tensor-parallel-size",
            "--pipeline-parallel-size",
            "--enforce-eager",
            "--enable-prefix-caching",
            "--no-enable-prefix-caching",
            "--enable-chunked-prefill",
            "--no-enable-chunked-prefill",
            "--block-size",
            "--swap-space",
            "--seed",
            "--max-logprobs",
            "--disable-log-requests",
            "--disable-log-stats",
        }
    ),
    ImageKind.LLAMACPP: frozenset(
        {
            "--n-ctx",
            "--n-gpu-layers",
            "--n-threads",
            "--n-threads-batch",
            "--n-batch",
            "--n-ubatch",
            "--flash-attn",
            "--offload-kqv",
            "--type-k",
            "--type-v",
            "--use-mlock",
            "--use-mmap",
            "--seed",
        }
    ),
}


def unsafe_env(names: Iterable[str]) -> list[str]:
    return sorted(name for name in names if name not in SAFE_ENV)


def unsafe_args(kind: ImageKind, args: list[str]) -> list[str]:
    """The flags in `args` outside the engine's allow-list (values such as `512` or `-1` pass)."""
    aliases: dict[str, str] = {}
    if kind == ImageKind.VLLM:
        aliases = vllm_image.ALIASES
    safe = SAFE_ARGS.get(kind, frozenset())
    flags = [flag_name(arg, aliases) for arg in args]
    return [arg for arg, flag in zip(args, flags, strict=True) if flag is not None and flag not in safe]


def host_surface(spec: EndpointSpec) -> dict[str, Any]:
    """Each part of the spec that can run code on the host, by its wire path, with its value."""
    model = spec.model
    image = model.image
    out: dict[str, Any] = {}
    if image.kind == ImageKind.CUSTOM:
        out["model.image.custom.command"] = image.config
    elif "enginePython" in image.config:
        out[f"model.image.{image.kind.value}.enginePython"] = image.config["enginePython"]
    for name in unsafe_env(model.env):
        out[f"model.env.{name}"] = model.env[name]
    for name in unsafe_env(model.secrets):
        out[f"model.secrets.{name}"] = model.secrets[name]
    if unsafe_args(image.kind, model.args):
        out["model.args"] = list(model.args)  # any change to a list with such a flag can retarget it
    return out


def host_changes(spec: EndpointSpec, current: EndpointSpec | None = None) -> list[str]:
    """The wire paths a write sets to host code it did not already run (all of them on a create)."""
    before = host_surface(current) if current is not None else {}
    return [path for path, value in host_surface(spec).items() if before.get(path, _ABSENT) != value]


_ABSENT = object()


def launch_refusal(spec: EndpointSpec, allow_custom_commands: bool) -> str | None:
    """Why this installation may not launch a replica of `spec` now, or None when it may.

    The create checked the same switch, but an operator may have restarted `modelport up`
    without `--allow-custom-commands` since: the switch holds at every launch, not only at the
    write that set the command."""
    if spec.model.image.kind == ImageKind.CUSTOM and not allow_custom_commands:
        return (
            "custom commands are off on this installation: start `modelport up "
            "--allow-custom-commands` and resume the endpoint, or change the endpoint's image"
        )
    return None
