"""Print the planner's accuracy table and hardware catalog as Markdown (for docs/planner.md).

    python benchmarks/planner_accuracy.py

The accuracy table runs the planner on the config.json values of public models (written out in
tests/unit/models/public_models.py, with the source of every published figure) and compares its
parameter count, bf16 weight bytes and KV-cache bytes per token with the published numbers and
with the KV formula worked out by hand from each config.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.unit.models.public_models

from tests.unit.models.public_models import MODELS

from modelport.models.architecture import kv_bytes_per_token
from modelport.models.hardware import CATALOG
from modelport.models.inspect import info_from_config
from modelport.models.planner import weights_bytes
from modelport.models.quantization import SCHEMES


def _error(planned: int, published: int) -> str:
    return f"{(planned - published) / published:+.3%}"


def accuracy_table() -> list[str]:
    lines = [
        "| model | published params | source | planner | error | published bytes | source | planner (bf16) "
        "| error | KV B/token, planner | by hand from the config |",
        "|---|--:|---|--:|--:|--:|---|--:|--:|--:|---|",
    ]
    for m in MODELS:
        info = info_from_config(m.config)
        params = info.parameters.total
        kv = kv_bytes_per_token(info.facts, 2)
        kv_mark = "" if kv == m.kv_bytes_per_token else " **≠**"
        if m.checkpoint_bytes:
            planned = weights_bytes(info, SCHEMES["bf16"])
            error = _error(planned, m.checkpoint_bytes)
            size = f"{m.checkpoint_bytes:,} | {m.bytes_source} | {planned:,} | {error}"
        else:
            size = "– | – | – | –"
        lines.append(
            f"| {m.name} | {m.params:,} | {m.params_source} | {params:,} | {_error(params, m.params)} "
            f"| {size} | {kv:,}{kv_mark} | {m.kv_formula} = {m.kv_bytes_per_token:,} |"
        )
    return lines


def active_table() -> list[str]:
    lines = ["| model | published active (source) | planner | error |", "|---|---|---|---|"]
    for m in MODELS:
        if m.active_params:
            active = info_from_config(m.config).parameters.active
            lines.append(
                f"| {m.name} | {m.active_params:,} ({m.active_source}) | {active:,} | "
                f"{_error(active, m.active_params)} |"
            )
    return lines


def catalog_table() -> list[str]:
    lines = [
        "| instance type | GPU | memory (driver total) | bandwidth GB/s | dense bf16 TFLOPs | FP8 "
        "| default $/GPU-h |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in CATALOG:
        memory = f"{a.memory_bytes / 2**20:,.0f} MiB = {a.memory_bytes / 1e9:.1f} GB"
        lines.append(
            f"| `{a.id}` | {a.name} | {memory} | {a.bandwidth_gbps:,.0f} | {a.bf16_tflops:,.0f} | "
            f"{'yes' if a.fp8 else 'no'} | {a.price_per_hour:.2f} |"
        )
    return lines


def main() -> None:
    print("### Accuracy\n")
    print("\n".join(accuracy_table()))
    print("\n### Active parameters of MoE models\n")
    print("\n".join(active_table()))
    print("\n### Catalog\n")
    print("\n".join(catalog_table()))


if __name__ == "__main__":
    main()
