"""The hardware this installation can place replicas on (`GET /v2/provider/{namespace}`)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import psutil

from modelport import envs


def local_hardware() -> list[dict[str, Any]]:
    """This machine's CPU, and each NVIDIA GPU nvidia-smi reports (no torch import needed)."""
    memory_gb = round(psutil.virtual_memory().total / 2**30)
    cpus = psutil.cpu_count(logical=True) or 1
    items = [
        {
            "vendor": "local",
            "region": envs.REGION.get(),
            "accelerator": "cpu",
            "instanceType": "local",
            "instanceSize": "x1",
            "numCpus": cpus,
            "memoryGb": memory_gb,
            "numAccelerators": 0,
            "available": True,
        }
    ]
    for index, (gpu_name, gpu_memory_mib) in enumerate(_nvidia_gpus()):
        items.append(
            {
                "vendor": "local",
                "region": envs.REGION.get(),
                "accelerator": "gpu",
                "instanceType": gpu_name,
                "instanceSize": f"x1-gpu{index}",
                "numCpus": cpus,
                "memoryGb": memory_gb,
                "numAccelerators": 1,
                "acceleratorMemoryGb": round(gpu_memory_mib / 1024),
                "available": True,
            }
        )
    return items


def _nvidia_gpus() -> list[tuple[str, int]]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, memory = line.rpartition(",")
        if name and memory.strip().isdigit():
            gpus.append((name.strip(), int(memory.strip())))
    return gpus
