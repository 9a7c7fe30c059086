"""A PNG of an endpoint's series (`modelport endpoints stats NAME --plot out.png`): traffic and
errors, latency and TTFT, output tokens/s and replicas, on one time axis."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from modelport.bench.plot import pyplot


def plot_series(report: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    points = report["points"]
    times = [datetime.fromisoformat(p["t"]) for p in points]

    def values(key: str) -> list[float]:
        return [float("nan") if p[key] is None else p[key] for p in points]

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    where = f"{report['namespace']}/{report['name']}"
    fig.suptitle(f"{where}: {report['from']} to {report['to']} (step {report['step']} s)")
    traffic, latency, tokens, replicas = axes
    traffic.plot(times, values("requests_per_s"), color="tab:blue", label="requests/s")
    traffic.set_ylabel("requests/s")
    errors = traffic.twinx()
    errors.plot(times, [100 * v for v in values("error_rate")], color="tab:red", label="errors %")
    errors.set_ylabel("errors %")
    for key, style in (("latency_p50_ms", "-"), ("latency_p95_ms", "--")):
        latency.plot(times, values(key), style, color="tab:purple", label=key.replace("_ms", ""))
    for key, style in (("ttft_p50_ms", "-"), ("ttft_p95_ms", "--")):
        latency.plot(times, values(key), style, color="tab:orange", label=key.replace("_ms", ""))
    latency.set_ylabel("ms")
    latency.legend(loc="upper left", fontsize="small")
    tokens.plot(times, values("output_tokens_per_s"), color="tab:green")
    tokens.set_ylabel("output tokens/s")
    replicas.step(times, values("replicas"), where="post", color="tab:gray")
    replicas.set_ylabel("replicas (average)")
    replicas.set_xlabel("time (UTC)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
