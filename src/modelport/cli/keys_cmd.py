"""`modelport keys …`: create, list, rotate and revoke API keys, and see what each has used."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.table import Column, Table

from modelport import envs
from modelport.cli.endpoints_cmd import EXIT_CODES, AsJson, Token, Url, err, exits_cleanly, out
from modelport.sdk import ApiKey, Client

keys_app = typer.Typer(
    help=f"API keys for endpoint traffic (and admin access).\n\n{EXIT_CODES}", no_args_is_help=True
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="inference or admin (repeatable).")]
Endpoints = Annotated[
    list[str] | None, typer.Option("--endpoint", help='"ns/name", "ns/*" or "*" (repeatable; default "*").')
]
ExpiresIn = Annotated[str | None, typer.Option(help="Lifetime: 3600, 90m, 12h or 30d.")]
Rpm = Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option("--tpm", help="Tokens (in + out) per minute.")]
Budget = Annotated[int | None, typer.Option("--budget", help="Tokens per budget period.")]
Period = Annotated[str | None, typer.Option("--budget-period", help="hour, day or month (default month).")]


def seconds(text: str) -> int:
    """'3600', '90m', '12h', '30d' → seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter(f"expected a duration such as 3600, 90m, 12h or 30d, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _show(key: ApiKey, as_json: bool) -> None:
    if as_json:
        print(json.dumps(key.raw))
        return
    limits = key.limits
    table = Table(show_header=False, box=None)
    rows = [
        ("id", key.id),
        ("name", key.name),
        ("status", key.status),
        ("scopes", ", ".join(key.scopes)),
        ("endpoints", ", ".join(key.endpoints)),
        ("requests/min", limits.get("requestsPerMinute") or "-"),
        ("tokens/min", limits.get("tokensPerMinute") or "-"),
        (
            "budget",
            f"{limits['tokenBudget']} tokens per {limits.get('budgetPeriod')}"
            if limits.get("tokenBudget")
            else "-",
        ),
        ("created", key.created_at),
        ("expires", key.expires_at or "never"),
        ("revoked", key.revoked_at or "-"),
        ("rotated to", key.rotated_to or "-"),
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}[/bold]", str(value))
    out.print(table)
    if key.secret:
        err.print("[yellow]The key below is shown once; store it now (only its hash is kept).[/yellow]")
        out.print(key.secret, highlight=False, soft_wrap=True)


@keys_app.command("create")
@exits_cleanly
def create(
    name: str,
    scope: Scopes = None,
    endpoint: Endpoints = None,
    expires_in: ExpiresIn = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    budget: Budget = None,
    budget_period: Period = None,
    url: Url = envs.URL.default,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create a key; its secret is printed once."""
    key = Client(url, token).create_key(
        name,
        scopes=scope,
        endpoints=endpoint,
        expires_in=seconds(expires_in) if expires_in else None,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        token_budget=budget,
        budget_period=budget_period,
    )
    _show(key, as_json)


@keys_app.command("list")
@exits_cleanly
def list_(url: Url = envs.URL.default, token: Token = None, as_json: AsJson = False) -> None:
    """List keys (never their secrets)."""
    keys = Client(url, token).list_keys()
    if as_json:
        print(json.dumps({"items": [k.raw for k in keys]}))
        return
    table = Table(Column("ID", no_wrap=True), "NAME", "STATUS", "SCOPES", "ENDPOINTS", "LIMITS", "EXPIRES")
    for k in keys:
        limits = ", ".join(f"{n}={v}" for n, v in k.limits.items() if v is not None and n != "budgetPeriod")
        table.add_row(
            k.id,
            k.name,
            k.status,
            ",".join(k.scopes),
            ",".join(k.endpoints),
            limits or "-",
            k.expires_at or "never",
        )
    out.print(table)


@keys_app.command("describe")
@exits_cleanly
def describe(key_id: str, url: Url = envs.URL.default, token: Token = None, as_json: AsJson = False) -> None:
    """Show one key."""
    _show(Client(url, token).get_key(key_id), as_json)


@keys_app.command("update")
@exits_cleanly
def update(
    key_id: str,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    scope: Scopes = None,
    endpoint: Endpoints = None,
    expires_in: ExpiresIn = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    budget: Budget = None,
    budget_period: Period = None,
    url: Url = envs.URL.default,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Change a key's name, scopes, endpoints, expiry or limits (takes effect at once)."""
    key = Client(url, token).update_key(
        key_id,
        name=name,
        scopes=scope,
        endpoints=endpoint,
        expires_in=seconds(expires_in) if expires_in else None,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        token_budget=budget,
        budget_period=budget_period,
    )
    _show(key, as_json)


@keys_app.command("revoke")
@exits_cleanly
def revoke(key_id: str, url: Url = envs.URL.default, token: Token = None, as_json: AsJson = False) -> None:
    """Revoke a key: refused by the gateway from the next request."""
    key = Client(url, token).revoke_key(key_id)
    if not as_json:
        err.print(f"revoked {key.id} ({key.name})")
    _show(key, as_json)


@keys_app.command("rotate")
@exits_cleanly
def rotate(
    key_id: str,
    overlap: Annotated[str, typer.Option(help="How long the old key keeps working: 0, 90m, 1h…")] = "1h",
    url: Url = envs.URL.default,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Issue a new secret with the same scopes and limits; the old one works for the overlap."""
    key = Client(url, token).rotate_key(key_id, 0 if overlap.strip() in ("0", "0s") else seconds(overlap))
    _show(key, as_json)


@keys_app.command("usage")
@exits_cleanly
def usage(key_id: str, url: Url = envs.URL.default, token: Token = None, as_json: AsJson = False) -> None:
    """Requests and tokens metered for a key, per endpoint, and its budget."""
    report = Client(url, token).key_usage(key_id)
    if as_json:
        print(json.dumps(report))
        return
    table = Table("NAMESPACE", "ENDPOINT", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS")
    for row in report["byEndpoint"]:
        table.add_row(
            row["namespace"],
            row["name"],
            str(row["requests"]),
            str(row["promptTokens"]),
            str(row["completionTokens"]),
        )
    table.add_row(
        "[bold]total[/bold]",
        "",
        str(report["requests"]),
        str(report["promptTokens"]),
        str(report["completionTokens"]),
    )
    out.print(table)
    budget = report["budget"]
    limit = budget["limit"]
    out.print(
        f"budget this {budget['period']}: {budget['used']} tokens used"
        + (f" of {limit}" if limit else " (no limit)")
    )
