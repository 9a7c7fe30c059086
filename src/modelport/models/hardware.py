"""The hardware catalog the planner sizes models against: cloud GPUs and this machine's CPU.

Memory is what the driver reports as the card's total (nvidia-smi `memory.total`, rocm-smi
VRAM total), not the marketing figure: an "80GB" A100 has 81920 MiB (85.9 GB), an "80GB" H100
81559 MiB, a "141GB" H200 143771 MiB (these are the figures vLLM's `--gpu-memory-utilization`
is a fraction of). Bandwidth (GB/s) and dense bf16 TFLOPs are the vendors' data-sheet figures
for the SXM/OAM or the usual cloud part; they feed only the throughput estimate.

Prices are list-price-ish defaults in USD per GPU-hour (on-demand cloud rates of 2025, rounded),
there to rank options, not to quote: override them with a JSON file `{"nvidia-h100": 3.2, ...}`
named by MODELPORT_HARDWARE_PRICES or `modelport plan --prices FILE`. An instance of n GPUs
costs n times the GPU price. The local CPU costs 0 unless the file prices "local".

Instance types follow Inference Endpoints' lowercase names (`nvidia-l4`, `nvidia-a100`...);
sizes are `x1`, `x2`, `x4`, `x8` GPUs (tensor parallel). The local CPU is type `local`, size
`x1`, as in the control plane's hardware listing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from modelport import envs

MIB = 2**20


@dataclass(frozen=True)
class Accelerator:
    id: str  # the instance type
    name: str  # as vendors write it
    vendor: str
    memory_bytes: int  # one device, as the driver reports it
    bandwidth_gbps: float  # memory bandwidth, GB/s
    bf16_tflops: float  # dense, no sparsity
    fp8: bool  # native FP8 tensor cores
    compute_capability: float | None  # NVIDIA SM version; None for AMD (ROCm)
    price_per_hour: float  # USD per device-hour
    sizes: tuple[int, ...] = (1, 2, 4, 8)
    kind: str = "gpu"  # gpu or cpu

    @property
    def bf16(self) -> bool:
        return self.compute_capability is None or self.compute_capability >= 8.0


@dataclass(frozen=True)
class HardwareOption:
    """One instance: `count` devices of one accelerator, `count`-way tensor parallel."""

    accelerator: Accelerator
    count: int

    @property
    def instance_type(self) -> str:
        return self.accelerator.id

    @property
    def instance_size(self) -> str:
        return f"x{self.count}"

    @property
    def price_per_hour(self) -> float:
        return self.accelerator.price_per_hour * self.count

    @property
    def is_cpu(self) -> bool:
        return self.accelerator.kind == "cpu"

    @property
    def label(self) -> str:
        if self.is_cpu:
            return self.accelerator.name
        return f"{self.count}× {self.accelerator.name}"


CATALOG: tuple[Accelerator, ...] = (
    Accelerator("nvidia-t4", "T4 16GB", "nvidia", 15360 * MIB, 320, 65, False, 7.5, 0.50),
    Accelerator("nvidia-l4", "L4 24GB", "nvidia", 23034 * MIB, 300, 121, True, 8.9, 0.80),
    Accelerator("nvidia-a10g", "A10G 24GB", "nvidia", 23028 * MIB, 600, 70, False, 8.6, 1.00),
    Accelerator("nvidia-l40s", "L40S 48GB", "nvidia", 46068 * MIB, 864, 362, True, 8.9, 1.80),
    Accelerator("nvidia-a100-40gb", "A100 40GB", "nvidia", 40960 * MIB, 1555, 312, False, 8.0, 1.50),
    Accelerator("nvidia-a100", "A100 80GB", "nvidia", 81920 * MIB, 2039, 312, False, 8.0, 2.50),
    Accelerator("nvidia-h100", "H100 80GB", "nvidia", 81559 * MIB, 3350, 989, True, 9.0, 4.50),
    Accelerator("nvidia-h200", "H200 141GB", "nvidia", 143771 * MIB, 4800, 989, True, 9.0, 5.00),
    Accelerator("nvidia-b200", "B200 180GB", "nvidia", 183359 * MIB, 8000, 2250, True, 10.0, 7.00),
    Accelerator(
        "nvidia-rtx-pro-6000", "RTX PRO 6000 96GB", "nvidia", 97887 * MIB, 1792, 250, True, 12.0, 1.80
    ),
    Accelerator("amd-mi300x", "MI300X 192GB", "amd", 205_822_885_888, 5300, 1307, True, None, 2.50),
)

# The CPU's throughput figures are a rough guess for a server CPU (no way to measure them here).
CPU_BANDWIDTH_GBPS = 40.0
CPU_TFLOPS = 1.0


class UnknownHardwareError(ValueError):
    """An instance type or size the catalog does not have; the message lists the known ones."""


def _local_memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def local_cpu_option(
    prices: Mapping[str, float] | None = None, memory_bytes: int | None = None
) -> HardwareOption:
    """This machine's CPU and all its RAM, served by modelport's builtin engine."""
    memory = memory_bytes if memory_bytes is not None else _local_memory_bytes()
    price = float((prices or {}).get("local", 0.0))
    cpu = Accelerator(
        id="local",
        name=f"local CPU ({memory / 2**30:.0f} GiB RAM)",
        vendor="local",
        memory_bytes=memory,
        bandwidth_gbps=CPU_BANDWIDTH_GBPS,
        bf16_tflops=CPU_TFLOPS,
        fp8=False,
        compute_capability=None,
        price_per_hour=price,
        sizes=(1,),
        kind="cpu",
    )
    return HardwareOption(cpu, 1)


def accelerators(prices: Mapping[str, float] | None = None) -> tuple[Accelerator, ...]:
    """The GPU catalog with `prices` (USD per GPU-hour by instance type) over the defaults."""
    prices = prices or {}
    return tuple(replace(a, price_per_hour=float(prices[a.id])) if a.id in prices else a for a in CATALOG)


def catalog(
    prices: Mapping[str, float] | None = None,
    *,
    include_local: bool = True,
    local_memory_bytes: int | None = None,
) -> list[HardwareOption]:
    """Every option: each GPU at each size, then the local CPU."""
    options = [HardwareOption(a, n) for a in accelerators(prices) for n in a.sizes]
    if include_local:
        options.append(local_cpu_option(prices, local_memory_bytes))
    return options


def instance_types() -> tuple[str, ...]:
    return (*(a.id for a in CATALOG), "local")


def find_option(
    instance_type: str, instance_size: str, prices: Mapping[str, float] | None = None
) -> HardwareOption:
    """The option for an Inference-Endpoints-style type and size ("nvidia-l4", "x1")."""
    if instance_type == "local":
        if instance_size != "x1":
            raise UnknownHardwareError(f"the local CPU has one size, x1, not {instance_size!r}")
        return local_cpu_option(prices)
    for accelerator in accelerators(prices):
        if accelerator.id == instance_type:
            sizes = {f"x{n}": n for n in accelerator.sizes}
            if instance_size not in sizes:
                raise UnknownHardwareError(
                    f"{instance_type} comes in {', '.join(sizes)}, not {instance_size!r}"
                )
            return HardwareOption(accelerator, sizes[instance_size])
    raise UnknownHardwareError(
        f"unknown instance type {instance_type!r}; known: {', '.join(instance_types())}"
    )


def load_prices(path: Path) -> dict[str, float]:
    """A JSON object of USD per GPU-hour by instance type (and "local"); unknown types are refused."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read prices file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"prices file {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f'prices file {path} must be a JSON object like {{"nvidia-h100": 4.5}}')
    known = set(instance_types())
    prices: dict[str, float] = {}
    for key, value in raw.items():
        if key not in known:
            raise ValueError(
                f"prices file {path}: unknown instance type {key!r}; known: {', '.join(sorted(known))}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"prices file {path}: {key} must be a non-negative number of USD per hour")
        prices[key] = float(value)
    return prices


def default_prices() -> dict[str, float]:
    """Prices from the file MODELPORT_HARDWARE_PRICES names, or none (the catalog's defaults)."""
    path = envs.HARDWARE_PRICES.get()
    return load_prices(Path(path).expanduser()) if path else {}


def cpu_supports_bf16() -> bool:
    """bf16 is only fast where the CPU has native bf16 instructions (AVX512-BF16, AMX, Arm BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16", " bf16"))
