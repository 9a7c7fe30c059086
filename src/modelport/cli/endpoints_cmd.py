"""`modelport endpoints …`: manage endpoints on a control plane through the SDK.

Every command takes --url, --token, --namespace and --json (the API's JSON on stdout, nothing
else there); progress and errors go to stderr.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from modelport import envs
from modelport.cli.durations import parse_duration
from modelport.runtime.failure import failure_line
from modelport.sdk import Client, Endpoint
from modelport.sdk.errors import (
    APIError,
    ConnectError,
    EndpointFailed,
    ModelportError,
    NotFound,
    ValidationError,
    WaitTimeout,
)

EXIT_CODES = """Exit codes: 0 ok; 1 API/server error or endpoint failed; 2 usage or validation error;
3 not found; 4 timed out waiting; 5 control plane unreachable."""

endpoints_app = typer.Typer(help=f"Create and manage endpoints.\n\n{EXIT_CODES}", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

Url = Annotated[str, typer.Option(help="Control plane URL.", envvar=envs.URL.name)]
Token = Annotated[
    str | None,
    typer.Option(help="Admin token (default: the token file `modelport up` wrote).", envvar=envs.TOKEN.name),
]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON only.")]
Wait = Annotated[bool, typer.Option(help="Wait until the endpoint is ready, showing progress.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait.")]
KeyValues = Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")]


def _seconds(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


ScaleToZeroAfter = Annotated[
    int | None,
    typer.Option(
        parser=_seconds,
        metavar="DURATION",
        help="With --min-replicas 0: idle time before zero, e.g. 90s, 15m.",
    ),
]
TargetPending = Annotated[
    float | None, typer.Option(min=0.01, help="Autoscaling target: pending requests per replica (default 1).")
]
WarmStandby = Annotated[
    int | None,
    typer.Option(
        min=0, max=4, help="Replicas kept loaded out of rotation: scale-ups skip the load (costs memory)."
    ),
]
Stabilization = Annotated[
    int | None,
    typer.Option(parser=_seconds, metavar="DURATION", help="Scale down only after this calm (default 5m)."),
]

P = ParamSpec("P")
R = TypeVar("R")


def exits_cleanly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn SDK errors into one red line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConnectError as exc:
            code, text = 5, str(exc)
        except NotFound as exc:
            code, text = 3, exc.message
        except ValidationError as exc:
            code, text = 2, f"{exc.message}" + (f" (field {exc.field})" if exc.field else "")
        except WaitTimeout as exc:
            code, text = 4, str(exc)
        except (APIError, EndpointFailed, ModelportError) as exc:
            code, text = 1, getattr(exc, "message", str(exc))
        err.print(f"[red]error:[/red] {text}", highlight=False, markup=True)
        raise typer.Exit(code)

    return wrapper


def _pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    if values is None:
        return None
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        pairs[key] = value
    return pairs


def _show(ep: Endpoint, as_json: bool) -> None:
    if as_json:
        print(json.dumps(ep.raw))
        return
    table = Table(show_header=False, box=None)
    status = ep.raw["status"]
    scaling = ep.raw["compute"]["scaling"]
    rows = [
        ("name", ep.name),
        ("state", ep.state),
        ("message", ep.message or "-"),
        ("url", ep.url or "-"),
        ("replicas", f"{ep.ready_replicas}/{ep.target_replicas} ready (min {scaling['minReplica']}, "
                     f"max {scaling['maxReplica']})" + _standby(status, scaling)),
        ("autoscaling", _autoscaling(scaling)),
        ("model", ep.repository),
        ("revision", ep.revision or "-"),
        ("task", ep.raw["model"].get("task") or "- (found by the replica)"),
        ("engine args", " ".join(ep.raw["model"].get("args", [])) or "-"),
        ("type", ep.raw["type"]),
        ("updated", status.get("updatedAt", "-")),
    ]  # fmt: skip
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", str(value))
    out.print(table)
    if ep.replicas:
        replicas = Table("REPLICA", "GEN", "PHASE", "RESTARTS", "LAST ERROR")
        for r in ep.replicas:
            last = failure_line(r.last_error) or "-"  # the exception's line, not a traceback's tail
            replicas.add_row(r.id[:12], str(r.generation), r.phase, str(r.restarts), last)
        out.print(replicas)


def _standby(status: dict[str, Any], scaling: dict[str, Any]) -> str:
    wanted = scaling.get("warmStandby") or 0
    return f", warm standby {status.get('standbyReplica', 0)}/{wanted}" if wanted else ""


def _autoscaling(scaling: dict[str, Any]) -> str:
    """The policy in words: what it targets, when it scales down, when it goes to zero."""
    measure = {k: v for k, v in (scaling.get("measure") or {}).items() if v is not None}
    if "hardwareUsage" in measure:
        target = f"KV cache {measure['hardwareUsage']:g}% per replica"
    else:
        target = f"{measure.get('pendingRequests', 1):g} pending request(s) per replica"
    window = scaling.get("stabilizationWindowSeconds")
    parts = [target, f"scale down after {window if window is not None else 300:g} s calm"]
    if scaling["minReplica"] == 0:
        seconds = scaling.get("scaleToZeroTimeoutSeconds")
        minutes = scaling.get("scaleToZeroTimeout")
        idle = f"{seconds:g} s" if seconds else "never" if minutes == 0 else f"{minutes or 15} min"
        parts.append(f"zero after {idle} idle")
    return "; ".join(parts)


def _wait(ep: Endpoint, timeout: float, as_json: bool) -> None:
    with err.status(f"waiting for {ep.name}…") as spinner:

        def progress(raw: dict[str, Any]) -> None:
            s = raw["status"]
            ready = f"{s['readyReplica']}/{s['targetReplica']} ready"
            spinner.update(f"{ep.name}: {s['state']} ({ready}) {s.get('message', '')}")

        ep.wait(timeout=timeout, poll_interval=1.0, progress=progress)
    if not as_json:
        err.print(f"[green]{ep.name} is running[/green] at {ep.url}")


@endpoints_app.command("create")
@exits_cleanly
def create(
    name: Annotated[str, typer.Argument(help="Endpoint name (lowercase letters, digits, dashes).")],
    model: Annotated[str, typer.Option(help="Model folder (config.json + safetensors + tokenizer).")],
    revision: Annotated[str | None, typer.Option(help="Revision label to pin.")] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Hub task (text-classification, image-to-text, ...; docs/tasks.md); default: the model's."
        ),
    ] = None,
    type: Annotated[str, typer.Option(help="public, protected or private.")] = "protected",
    min_replicas: Annotated[int, typer.Option(help="Fewest replicas.")] = 1,
    max_replicas: Annotated[int | None, typer.Option(help="Most replicas (default: min).")] = None,
    scale_to_zero_after: ScaleToZeroAfter = None,
    target_pending: TargetPending = None,
    stabilization: Stabilization = None,
    warm_standby: WarmStandby = None,
    engine_arg: Annotated[list[str] | None, typer.Option(help="Extra engine argument (repeatable).")] = None,
    env: KeyValues = None,
    secret: KeyValues = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag (repeatable).")] = None,
    wait: Wait = True,
    timeout: Timeout = 600,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Create an endpoint from a local model folder."""
    client = Client(url, token, namespace)
    ep = client.create_endpoint(
        name,
        model,
        revision=revision,
        task=task,
        type=type,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_to_zero_after_s=scale_to_zero_after,
        target_pending=target_pending,
        stabilization_s=stabilization,
        warm_standby=warm_standby,
        engine_args=engine_arg,
        env=_pairs(env, "--env"),
        secrets=_pairs(secret, "--secret"),
        tags=tag,
    )
    if wait:
        _wait(ep, timeout, as_json)
    _show(ep, as_json)


@endpoints_app.command("list")
@exits_cleanly
def list_(url: Url = envs.URL.default, token: Token = None, namespace: Namespace = "default",
          as_json: AsJson = False) -> None:  # fmt: skip
    """List endpoints."""
    endpoints = Client(url, token, namespace).list_endpoints()
    if as_json:
        print(json.dumps({"items": [ep.raw for ep in endpoints]}))
        return
    table = Table("NAME", "STATE", "READY", "MODEL", "REVISION", "URL", "UPDATED")
    for column in table.columns:
        column.overflow = "fold"  # a path or URL is worth more in full than on one line
    for ep in endpoints:
        updated = ep.updated_at.strftime("%Y-%m-%d %H:%M:%S") if ep.updated_at else "-"
        table.add_row(ep.name, ep.state, f"{ep.ready_replicas}/{ep.target_replicas}", ep.repository,
                      ep.revision or "-", ep.url or "-", updated)  # fmt: skip
    out.print(table)


@endpoints_app.command("describe")
@exits_cleanly
def describe(name: str, url: Url = envs.URL.default, token: Token = None, namespace: Namespace = "default",
             as_json: AsJson = False) -> None:  # fmt: skip
    """Show one endpoint: spec, status and replicas."""
    _show(Client(url, token, namespace).get_endpoint(name), as_json)


@endpoints_app.command("logs")
@exits_cleanly
def logs(
    name: str,
    tail: Annotated[int, typer.Option(help="Lines per replica.")] = 200,
    replica: Annotated[str | None, typer.Option(help="Only this replica (id prefix).")] = None,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Print the last log lines of each replica."""
    items = Client(url, token, namespace).get_endpoint(name).logs(tail=tail)
    items = [r for r in items if not replica or r["id"].startswith(replica)]
    if as_json:
        print(json.dumps({"replicas": items}))
        return
    for r in items:
        err.print(f"[bold]== replica {r['id'][:12]} (generation {r['generation']}, {r['phase']})[/bold]")
        sys.stdout.write("".join(f"{line}\n" for line in r["lines"]))


@endpoints_app.command("stats")
@exits_cleanly
def stats(
    name: str,
    start: Annotated[str | None, typer.Option("--from", help="From (ISO 8601); default: 1 h ago.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to (not including); default: now.")] = None,
    step: Annotated[int, typer.Option(min=1, help="Seconds per point.")] = 60,
    plot: Annotated[Path | None, typer.Option(help="Also draw the series into this PNG.")] = None,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Requests/s, error rate, latency and TTFT p50/p95, output tokens/s and replicas per step."""
    report = Client(url, token, namespace).get_endpoint(name).metrics(start, end, step)
    if plot is not None:
        from modelport.cli.series_plot import plot_series

        plot_series(report, plot)
        err.print(f"wrote {plot}")
    if as_json:
        print(json.dumps(report))
        return
    title = f"{namespace}/{name}, {report['step']} s steps (steps with no traffic and no replica left out)"
    columns = ("TIME", "REQ/S", "ERRORS", "P50 MS", "P95 MS", "TTFT P50", "TTFT P95", "OUT TOK/S", "REPLICAS")
    table = Table(*columns, title=title)
    for p in report["points"]:
        if not p["requests"] and not p["replicas"]:
            continue
        rate = "-" if p["error_rate"] is None else f"{100 * p['error_rate']:.1f}%"
        table.add_row(p["t"][:19], f"{p['requests_per_s']:.2f}", rate, *(_ms(p[k]) for k in _LATENCIES),
                      f"{p['output_tokens_per_s']:.1f}", f"{p['replicas']:.2f}")  # fmt: skip
    out.print(table)


_LATENCIES = ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


@endpoints_app.command("events")
@exits_cleanly
def events(
    name: str,
    limit: Annotated[int, typer.Option(help="The newest N events.")] = 50,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Show scaling decisions: when, from/to how many replicas, who decided and why."""
    items = Client(url, token, namespace).get_endpoint(name).events(limit=limit)
    if as_json:
        print(json.dumps({"items": items}))
        return
    if not items:
        err.print(f"no scaling events for {name} yet")
        return
    table = Table("at", "replicas", "cause", "reason", "inputs")
    for e in items:
        inputs = " ".join(f"{k}={v:g}" for k, v in e["inputs"].items())
        table.add_row(e["at"], f"{e['from']} → {e['to']}", e["cause"], e["reason"], inputs)
    out.print(table)


def _stopping_command(action: str, doc: str) -> None:
    """pause / scale-to-zero: one call, nothing to wait for."""

    def command(
        name: str,
        url: Url = envs.URL.default,
        token: Token = None,
        namespace: Namespace = "default",
        as_json: AsJson = False,
    ) -> None:
        ep = Client(url, token, namespace).get_endpoint(name)
        getattr(ep, action.replace("-", "_"))()
        _show(ep, as_json)

    command.__doc__ = doc
    endpoints_app.command(action)(exits_cleanly(command))


_stopping_command("pause", "Stop every replica; requests get a 'paused' error until resume.")
_stopping_command("scale-to-zero", "Stop every replica; the next request wakes the endpoint.")


@endpoints_app.command("resume")
@exits_cleanly
def resume(
    name: str,
    wait: Wait = True,
    timeout: Timeout = 600,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Start a paused or scaled-to-zero endpoint again."""
    ep = Client(url, token, namespace).get_endpoint(name).resume()
    if wait:
        _wait(ep, timeout, as_json)
    _show(ep, as_json)


@endpoints_app.command("update")
@exits_cleanly
def update(
    name: str,
    model: Annotated[str | None, typer.Option(help="New model folder.")] = None,
    revision: Annotated[str | None, typer.Option(help="New revision label.")] = None,
    engine_arg: Annotated[
        list[str] | None, typer.Option(help="Engine arguments (replace the old ones).")
    ] = None,
    min_replicas: Annotated[int | None, typer.Option(help="Fewest replicas.")] = None,
    max_replicas: Annotated[int | None, typer.Option(help="Most replicas.")] = None,
    scale_to_zero_after: ScaleToZeroAfter = None,
    target_pending: TargetPending = None,
    stabilization: Stabilization = None,
    warm_standby: WarmStandby = None,
    env: KeyValues = None,
    secret: KeyValues = None,
    wait: Wait = True,
    timeout: Timeout = 600,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Change an endpoint; a new model, revision, engine args, env or secrets roll out with no downtime."""
    ep = Client(url, token, namespace).get_endpoint(name)
    ep.update(
        model=model,
        revision=revision,
        engine_args=engine_arg,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_to_zero_after_s=scale_to_zero_after,
        target_pending=target_pending,
        stabilization_s=stabilization,
        warm_standby=warm_standby,
        env=_pairs(env, "--env"),
        secrets=_pairs(secret, "--secret"),
    )
    if wait:
        _wait(ep, timeout, as_json)
    _show(ep, as_json)


@endpoints_app.command("delete")
@exits_cleanly
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: Url = envs.URL.default,
    token: Token = None,
    namespace: Namespace = "default",
    as_json: AsJson = False,
) -> None:
    """Delete an endpoint and stop its replicas."""
    if not yes:
        if not sys.stdin.isatty():
            err.print("[red]error:[/red] refusing to delete without --yes (no terminal to confirm on)")
            raise typer.Exit(2)
        typer.confirm(f"Delete endpoint {namespace}/{name}?", abort=True)
    ep = Client(url, token, namespace).get_endpoint(name)
    ep.delete()
    if as_json:
        print(json.dumps({"deleted": name, "namespace": namespace}))
    else:
        err.print(f"deleted {namespace}/{name}")


@endpoints_app.command("hardware")
@exits_cleanly
def hardware(url: Url = envs.URL.default, token: Token = None, namespace: Namespace = "default",
             as_json: AsJson = False) -> None:  # fmt: skip
    """Hardware this installation can place replicas on."""
    items = Client(url, token, namespace).list_hardware()
    if as_json:
        print(json.dumps({"items": items}))
        return
    table = Table("ACCELERATOR", "INSTANCE TYPE", "SIZE", "CPUS", "MEMORY GB", "ACCELERATORS")
    for h in items:
        table.add_row(h["accelerator"], h["instanceType"], h["instanceSize"], str(h["numCpus"]),
                      str(h["memoryGb"]), str(h["numAccelerators"]))  # fmt: skip
    out.print(table)
