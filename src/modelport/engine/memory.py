"""Parse memory budgets ("2GiB", "512MB", "0.1" = a fraction of the device's memory)."""

from __future__ import annotations

import re

import torch

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
}


def device_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    import psutil

    return int(psutil.virtual_memory().total)


def parse_budget(text: str, device: torch.device) -> int:
    """Bytes for a budget given as a size with a unit or a fraction (0, 1] of the device's memory."""
    value = text.strip().lower().replace(" ", "")
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)([a-z]*)", value)
    if not match:
        raise ValueError(f"cannot read memory size {text!r}; use e.g. 2GiB, 512MiB or a fraction like 0.1")
    number, unit = float(match.group(1)), match.group(2)
    if unit == "" and number <= 1.0:
        return int(number * device_memory_bytes(device))
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} in {text!r}; use B, KiB, MiB, GiB, KB, MB or GB")
    return int(number * _UNITS[unit])


def default_budget(device: torch.device) -> int:
    """Never "all RAM": 1 GiB on CPU (tens of thousands of tokens for small models); on a GPU,
    40% of the card, which leaves room for weights of models that fit it comfortably."""
    if device.type == "cuda":
        return int(device_memory_bytes(device) * 0.4)
    return 2**30
