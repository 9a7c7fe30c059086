"""`modelport doctor --residency`: every outbound destination this installation's configuration
can reach, and whether each is allowed; read from the environment and the store itself."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelport import envs

out = Console()


def residency_report(database_url: str | None) -> dict[str, Any]:
    from modelport.models.egress import allowed_hosts, egress_refusal, source_host
    from modelport.models.sources import SourceError, parse_source
    from modelport.store.repository import Store

    env = dict(os.environ)
    region = envs.REGION.get()
    destinations: dict[str, dict[str, Any]] = defaultdict(lambda: {"used_by": [], "allowed": True})
    elsewhere = []
    store = Store.open(database_url or envs.database_url())
    try:
        for endpoint in store.list_endpoints():
            revision = store.get_revision(endpoint.id, endpoint.generation)
            name = f"{endpoint.namespace}/{endpoint.name}"
            if endpoint.region != region:
                elsewhere.append({"endpoint": name, "region": endpoint.region})
            if revision.image_kind == "custom":
                destinations["(whatever the custom server contacts)"]["used_by"].append(name)
                continue
            try:
                source = parse_source(revision.repository, revision.revision)
            except SourceError:
                continue
            scoped = {**env, **revision.env, **revision.secrets}
            host = source_host(source, scoped)
            if host is None:
                continue
            destinations[host]["used_by"].append(name)
            destinations[host]["allowed"] = egress_refusal(source, scoped) is None
    finally:
        store.close()
    allowed = allowed_hosts(env)
    return {
        "region": region,
        "allowed_hosts": sorted(allowed) if allowed is not None else None,
        "destinations": [{"host": host, **info} for host, info in sorted(destinations.items())],
        "endpoints_in_other_regions": elsewhere,
        "on_demand": [
            {"host": "pypi.org (or pip's configured index)", "when": "modelport engines install"},
            {"host": "the source's host", "when": "modelport models pull / plan on a remote model"},
        ],
        "telemetry": {
            "modelport": "none: no usage reports, update checks or calls home",
            "replica_environment": dict(envs.TELEMETRY_OFF),
        },
    }


def doctor_command(
    residency: Annotated[bool, typer.Option("--residency", help="Outbound destinations, regions.")] = False,
    database_url: Annotated[str | None, typer.Option(help="The store (default: the data dir's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check this installation's configuration (today: --residency)."""
    if not residency:
        raise typer.BadParameter("say what to check: --residency", param_hint="--residency")
    report = residency_report(database_url)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    allowed = report["allowed_hosts"]
    out.print(f"region: [bold]{report['region']}[/] ({envs.REGION.name})", highlight=False)
    hosts = ", ".join(allowed) if allowed else f"any (set {envs.ALLOWED_HOSTS.name} to restrict)"
    out.print(f"allowed model hosts: {hosts}", highlight=False)
    table = Table("DESTINATION", "WHY", "ALLOWED", title="Outbound destinations of the configured endpoints")
    for d in report["destinations"]:
        verdict = "yes" if d["allowed"] else "[red]NO[/]"
        table.add_row(d["host"], "model source of " + ", ".join(d["used_by"]), verdict)
    for d in report["on_demand"]:
        table.add_row(d["host"], f"only when you run `{d['when']}`", "-")
    out.print(table)
    for e in report["endpoints_in_other_regions"]:
        where = f"endpoint {e['endpoint']} is in region {e['region']!r}"
        out.print(f"[red]{where}: its replicas do not start here[/]")
    off = ", ".join(f"{k}={v}" for k, v in report["telemetry"]["replica_environment"].items())
    out.print(f"telemetry: modelport sends none; every replica runs with {off}", highlight=False)
