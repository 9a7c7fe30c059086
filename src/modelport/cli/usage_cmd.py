"""`modelport usage`: requests, tokens, units (audio seconds, images, ...), replica-seconds and cost
per endpoint or key."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from modelport import envs
from modelport.cli.endpoints_cmd import AsJson, Token, Url, exits_cleanly, out
from modelport.sdk import Client


class By(StrEnum):
    endpoint = "endpoint"
    key = "key"


_ENDPOINT_COLUMNS = ("namespace", "endpoint", "requests", "errors", "prompt_tokens", "completion_tokens",
                     "units", "replica_seconds", "cost_usd", "cost_per_million_tokens")  # fmt: skip
_KEY_COLUMNS = ("key_id", "key_name", "requests", "errors", "prompt_tokens", "completion_tokens", "units")


@exits_cleanly
def usage_command(
    by: Annotated[By, typer.Option(help="Rows per endpoint (with cost) or per key.")] = By.endpoint,
    start: Annotated[str | None, typer.Option("--from", help="From this time (ISO 8601, zoned).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to (not including) this time.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one row per item, then a total.")] = False,
    url: Url = envs.URL.default,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Requests, tokens, units (audio seconds, images, documents, pixels), replica-seconds (billed
    per second) and cost, from the control plane."""
    report = Client(url, token).usage(by.value, start, end)
    if as_json:
        print(json.dumps(report))
        return
    columns = _ENDPOINT_COLUMNS if by == By.endpoint else _KEY_COLUMNS
    rows = [*report["items"], {columns[0]: "total", **report["totals"]}]
    rows = [{**row, "units": _units(row.get("units"))} for row in rows]
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    window = f"{report['from'] or 'the beginning'} to {report['to'] or report['at']}"
    table = Table(*(c.replace("_", " ").upper() for c in columns), title=f"Usage from {window}")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    out.print(table)


def _units(units: Any) -> str | None:
    """`audio_seconds=3.25 images=1`: the work that is not tokens, one cell (None: none)."""
    if not isinstance(units, dict) or not units:
        return None
    return " ".join(f"{name}={amount:.6f}".rstrip("0").rstrip(".") for name, amount in sorted(units.items()))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".") if value < 1 else f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
