"""Autoscaling policies replayed on traces: cost (replica-seconds) against queue wait.

    python benchmarks/autoscale_sim.py [--start-s 20] [--slots 8] [--service-s 4]
        [--max-replicas 4] [--target-pending 6] [--out benchmarks/results]

For each trace (an EU business day, a bursty pattern, a steady one) it runs modelport's
policy (the production `decide`, on a fake clock), an emulation of the managed default the
seeds describe, and always-on at the maximum, all with the same replica model. Prints a table,
writes OUT/autoscale_sim.json and OUT/autoscale_sim.png (replicas over time, per trace).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from modelport.autoscale.policy import ScalingPolicy
from modelport.autoscale.simulate import (
    AlwaysOn,
    ManagedDefaultScaler,
    ModelportScaler,
    ReplicaModel,
    Scaler,
    SimResult,
    Trace,
    bursty_trace,
    business_day_trace,
    simulate,
    steady_trace,
)

ROOT = Path(__file__).resolve().parent.parent


def scalers(args: argparse.Namespace) -> list[Scaler]:
    policy = ScalingPolicy(
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_pending=args.target_pending,
        stabilization_s=300.0,
        scale_to_zero_after_s=args.scale_to_zero_s,
    )
    return [
        ModelportScaler(policy),
        ManagedDefaultScaler(args.min_replicas, args.max_replicas),
        AlwaysOn(args.max_replicas),
    ]


def plot(traces: list[Trace], results: list[SimResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(traces), 1, figsize=(11, 3.2 * len(traces)), squeeze=False)
    for ax, trace in zip(axes[:, 0], traces, strict=True):
        hours = trace.duration_s > 6 * 3600
        scale, unit = (3600, "h") if hours else (60, "min")
        bucket = 300 if hours else 60
        counts = [0] * (int(trace.duration_s // bucket) + 1)
        for t in trace.arrivals:
            counts[int(t // bucket)] += 1
        rate_ax = ax.twinx()
        rate_ax.fill_between([i * bucket / scale for i in range(len(counts))], [c / bucket for c in counts],
                             step="post", color="0.85", label="arrivals/s")  # fmt: skip
        rate_ax.set_ylabel("requests/s")
        for result in (r for r in results if r.trace == trace.name):
            xs = [t / scale for t, _, _ in result.timeline]
            ax.step(xs, [launched for _, launched, _ in result.timeline], where="post", label=result.policy)
        ax.set_zorder(rate_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_title(f"{trace.name}: replicas (launched) over time")
        ax.set_xlabel(unit)
        ax.set_ylabel("replicas")
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start-s", type=float, default=20.0, help="replica launch → ready")
    parser.add_argument("--slots", type=int, default=8, help="concurrent requests per replica")
    parser.add_argument("--service-s", type=float, default=4.0, help="seconds a request holds a slot")
    parser.add_argument("--min-replicas", type=int, default=0)
    parser.add_argument("--max-replicas", type=int, default=4)
    parser.add_argument(
        "--target-pending",
        type=float,
        default=None,
        help="modelport: pending requests per replica (default: 80%% of --slots, the "
        "managed default's utilisation threshold, so both aim at the same load)",
    )
    parser.add_argument("--scale-to-zero-s", type=float, default=900.0, help="modelport: idle before zero")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.target_pending is None:
        args.target_pending = 0.8 * args.slots
    model = ReplicaModel(args.start_s, args.slots, args.service_s)
    traces = [business_day_trace(), bursty_trace(), steady_trace()]
    console = Console(width=110)
    results: list[SimResult] = []
    started = time.monotonic()
    for trace in traces:
        for scaler in scalers(args):
            results.append(simulate(trace, scaler, model, initial=1))
    table = Table(title=f"Autoscaling on traces (replica start {args.start_s:g} s, {args.slots} slots x "
                        f"{args.service_s:g} s, max {args.max_replicas})")  # fmt: skip
    for column in (
        "trace",
        "policy",
        "replica-h",
        "vs always-on",
        "p50 wait s",
        "p95 wait s",
        "held",
        "failed",
    ):
        table.add_column(column, justify="left" if column in ("trace", "policy") else "right")
    summaries: list[dict[str, Any]] = []
    for result in results:
        always = next(r for r in results if r.trace == result.trace and r.policy == "always-on")
        row = result.summary() | {
            "cost_vs_always_on": round(result.replica_seconds / always.replica_seconds, 3)
        }
        summaries.append(row)
        cells = [f"{row['replica_hours']:.1f}", f"{row['cost_vs_always_on']:.0%}", f"{row['p50_wait_s']:.2f}",
                 f"{row['p95_wait_s']:.2f}", str(row["held"]), str(row["failed"])]  # fmt: skip
        table.add_row(result.trace, result.policy, *cells)
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    record = {
        "settings": settings,
        "requests": {t.name: len(t.arrivals) for t in traces},
        "results": summaries,
        "simulated_in_s": round(time.monotonic() - started, 1),
    }
    (args.out / "autoscale_sim.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(traces, results, args.out / "autoscale_sim.png")
    console.print(f"wrote {args.out / 'autoscale_sim.json'} and {args.out / 'autoscale_sim.png'}")


if __name__ == "__main__":
    main()
