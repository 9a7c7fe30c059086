"""An external engine's command line from three sources: modelport's, the planner's, the user's.

modelport owns the flags that route traffic (model, host, port, served name): a user's args may
not set them. Every other flag modelport would pass (its defaults, the planner's sizing mapped to
the engine's names, settings from `model.image.<kind>`) gives way to the user's args: a flag the
user sets is dropped from modelport's part, so each flag appears once (TGI's and TEI's parsers
refuse a repeated flag). The user's args come last, unchanged.

Flags compare by name: `--max_model_len=8` names `--max-model-len` (vLLM and SGLang read either
spelling), and an engine's short aliases (vLLM's `-tp`) name their long flag. A linked group
(TGI's input and total token limits) is dropped whole when the user sets any of it, since the
engine checks its members against each other.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

# normalised names (engine_flags.flag_name): --model_alias is --model-alias; a config file
# replaces every command-line setting
LLAMACPP_OWNED = frozenset({"--model", "--host", "--port", "--model-alias", "--config-file"})

_NUMBER = re.compile(r"-\d+(\.\d+)?")


def flag_name(arg: str, aliases: Mapping[str, str] | None = None) -> str | None:
    """The flag an argument names, normalised; None for a value (`-1` is a value)."""
    if not arg.startswith("-") or _NUMBER.fullmatch(arg):
        return None
    name = arg.split("=", 1)[0]
    if name.startswith("--"):
        name = name.replace("_", "-")
    return (aliases or {}).get(name, name)


def flag_values(flags: Sequence[str]) -> dict[str, str]:
    """The planner's `--flag value` pairs (or `--flag=value`) by normalised name."""
    values: dict[str, str] = {}
    i = 0
    while i < len(flags):
        arg = flags[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            i += 1
        elif i + 1 < len(flags):
            name, value = arg, flags[i + 1]
            i += 2
        else:
            break
        values[name.replace("_", "-")] = value
    return values


def check_owned(
    engine: str, user_args: Sequence[str], owned: Collection[str], aliases: Mapping[str, str]
) -> None:
    """Refuse user args that would move the engine off the model, address or name modelport gave it."""
    taken = sorted({n for a in user_args if (n := flag_name(a, aliases)) is not None and n in owned})
    if taken:
        raise ValueError(
            f"model.args must not set {', '.join(taken)}: modelport sets the model, host, port and "
            f"served name of a {engine} replica"
        )


def merge(
    ours: Sequence[str],
    user_args: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    linked: Sequence[Collection[str]] = (),
) -> list[str]:
    """`ours` (flags with their values) less those the user's args set, then the user's args."""
    taken = {n for a in user_args if (n := flag_name(a, aliases)) is not None}
    for group in linked:
        if taken & set(group):
            taken |= set(group)
    kept: list[str] = []
    keep = True
    for arg in ours:
        name = flag_name(arg, aliases)
        if name is not None:
            keep = name not in taken
        if keep:
            kept.append(arg)
    return [*kept, *user_args]


# Linux limits a unix socket's path to 108 bytes (sun_path), the terminating NUL included.
_SOCKET_PATH_MAX = 107


def socket_path(folder: Path, name: str, suffix_room: int = 0) -> str:
    """A unix socket path in the replica's folder (engines that default to one fixed path in /tmp
    would collide when two replicas share a machine); `suffix_room`: bytes the engine appends."""
    path = str(folder / name)
    if len(path.encode()) + suffix_room > _SOCKET_PATH_MAX:
        raise ValueError(f"socket path {path} is too long for a unix socket; use a shorter data directory")
    return path


def kv_dtype_flags(plan: Mapping[str, str], names: Mapping[str, str], engine: str) -> list[str]:
    """The planner's --kv-cache-dtype in an engine's own names ([] for auto); refuses what it lacks."""
    kv_dtype = plan.get("--kv-cache-dtype", "auto")
    if kv_dtype == "auto":
        return []
    if kv_dtype not in names:
        raise ValueError(f"{engine} has no {kv_dtype} KV cache")
    return ["--kv-cache-dtype", names[kv_dtype]]
