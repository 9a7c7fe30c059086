"""Build the SmolLM-135M-shaped random Llama (~108M parameters, bf16) used by the benchmarks.

    python benchmarks/build_smollm.py [OUT_DIR] [--force]

OUT_DIR defaults to .bench/smollm-135m in the repository root (git-ignored). Random weights:
fine for throughput and latency, meaningless text. An existing folder is reused unless --force.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from modelport.models.demo import SMOLLM_135M, build_llama

DEFAULT_OUT = Path(__file__).resolve().parent.parent / ".bench" / "smollm-135m"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"folder to write (default {DEFAULT_OUT})"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder has a model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="bfloat16", help="dtype of the saved weights (default bfloat16)")
    args = parser.parse_args()
    out: Path = args.out
    if (out / "model.safetensors").exists() and (out / "modelport-demo.json").exists() and not args.force:
        print(f"{out} already has a model (use --force to rebuild)")
        return
    t0 = time.perf_counter()
    build_llama(out, SMOLLM_135M, seed=args.seed, dtype=args.dtype)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"built {out} ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
