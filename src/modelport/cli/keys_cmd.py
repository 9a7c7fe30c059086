"""`modelport keys …`: create, list, rotate and revoke API keys, and see what each has used.

Like `modelport endpoints`, every command takes --url, --token and --json (the API's JSON on
stdout, nothing else there); notices and errors go to stderr. A key's secret is printed by
`create` and `rotate` only: the control plane keeps its hash, so it cannot be shown again.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

import typer
from rich.table import Column, Table

from modelport import envs
from modelport.cli.durations import format_duration, parse_duration
from modelport.cli.endpoints_cmd import EXIT_CODES, AsJson, Token, Url, err, exits_cleanly, out
from modelport.sdk import ApiKey, Client

keys_app = typer.Typer(
    help=f"API keys for endpoint traffic (and admin access).\n\n{EXIT_CODES}", no_args_is_help=True
)

SHOWN_ONCE = "Save this key now: it is shown only this once and cannot be retrieved again."


def _lifetime(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _overlap(text: str) -> int:
    try:
        return parse_duration(text, allow_zero=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


class Scope(StrEnum):
    inference = "inference"
    admin = "admin"
    host = "host"  # with admin: write what runs code on the host (custom commands, env, engine args)


class Clear(StrEnum):
    rpm = "rpm"
    tpm = "tpm"
    budget = "budget"
    expiry = "expiry"


Scopes = Annotated[
    list[Scope] | None,
    typer.Option(
        "--scope",
        help="inference, admin or host (repeatable; a new key gets inference). host, with admin, may "
        "write what runs code on this machine: custom commands, environment outside the safe list, "
        "engine flags outside the tuning ones. A key never gets more than the key that makes it.",
    ),
]
Endpoints = Annotated[
    list[str] | None,
    typer.Option("--endpoint", help='"ns/name", "ns/*" or "*" (repeatable; a new key gets "*").'),
]
ExpiresIn = Annotated[
    int | None, typer.Option(parser=_lifetime, metavar="DURATION", help="Lifetime: 3600, 90m, 12h or 30d.")
]
Rpm = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens (in + out) per minute.")]
Budget = Annotated[int | None, typer.Option("--budget", min=1, help="Tokens per budget period.")]
Period = Annotated[
    Literal["hour", "day", "month"] | None,
    typer.Option("--budget-period", help="Budget period (default month)."),
]


def _limits_text(limits: dict[str, Any]) -> str:
    parts = []
    if limits.get("requestsPerMinute") is not None:
        parts.append(f"{limits['requestsPerMinute']} req/min")
    if limits.get("tokensPerMinute") is not None:
        parts.append(f"{limits['tokensPerMinute']} tok/min")
    if limits.get("tokenBudget") is not None:
        parts.append(f"{limits['tokenBudget']} tok/{limits.get('budgetPeriod') or 'month'}")
    return ", ".join(parts) or "-"


def _status(status: str) -> str:
    colour = {"active": "green", "expired": "yellow", "revoked": "red"}.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status


def _show(key: ApiKey, as_json: bool) -> None:
    if as_json:
        print(json.dumps(key.raw))  # with "key" when the API sent the secret
        return
    limits = key.limits
    table = Table(show_header=False, box=None)
    budget = limits.get("tokenBudget")
    rows = [
        ("id", key.id),
        ("name", key.name),
        ("prefix", key.prefix),
        ("status", _status(key.status)),
        ("scopes", ", ".join(key.scopes)),
        ("endpoints", ", ".join(key.endpoints)),
        ("requests/min", limits.get("requestsPerMinute") or "-"),
        ("tokens/min", limits.get("tokensPerMinute") or "-"),
        ("budget", f"{budget} tokens per {limits.get('budgetPeriod') or 'month'}" if budget else "-"),
        ("created", key.created_at),
        ("expires", key.expires_at or "never"),
        ("revoked", key.revoked_at or "-"),
        ("rotated to", key.rotated_to or "-"),
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}[/bold]", str(value))
    out.print(table)
    if key.secret:
        err.print(f"[bold yellow]{SHOWN_ONCE}[/bold yellow]")
        out.print(key.secret, highlight=False, markup=False, soft_wrap=True)


@keys_app.command("create")
@exits_cleanly
def create(
    name: Annotated[str, typer.Argument(help="A name for the key (1-64 characters).")],
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
    """Create a key; its secret is printed this once."""
    key = Client(url, token).create_key(
        name,
        scopes=[s.value for s in scope] if scope else None,
        endpoints=endpoint,
        expires_in=expires_in,
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
        table.add_row(k.id, k.name, _status(k.status), ",".join(k.scopes), ",".join(k.endpoints),
                      _limits_text(k.limits), k.expires_at or "never")  # fmt: skip
    out.print(table)


@keys_app.command("describe")
@exits_cleanly
def describe(key_id: str, url: Url = envs.URL.default, token: Token = None, as_json: AsJson = False) -> None:
    """Show one key (never its secret)."""
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
    clear: Annotated[
        list[Clear] | None,
        typer.Option(help="Remove a limit or the expiry: rpm, tpm, budget, expiry (repeatable)."),
    ] = None,
    url: Url = envs.URL.default,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Change a key's name, scopes, endpoints, expiry or limits (the gateway applies it at once)."""
    given: dict[str, Any] = {
        "name": name,
        "scopes": [s.value for s in scope] if scope else None,
        "endpoints": endpoint,
        "expires_in": expires_in,
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "token_budget": budget,
        "budget_period": budget_period,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    cleared = {Clear.rpm: "requests_per_minute", Clear.tpm: "tokens_per_minute", Clear.budget: "token_budget",
               Clear.expiry: "expires_at"}  # fmt: skip
    for item in clear or []:
        field = cleared[item]
        if field in changes or (item is Clear.expiry and expires_in is not None):
            raise typer.BadParameter(
                f"--clear {item.value} contradicts the new value given", param_hint="--clear"
            )
        changes[field] = None
    if not changes:
        err.print("[red]error:[/red] nothing to change: give an option such as --name, --rpm or --clear")
        raise typer.Exit(2)
    _show(Client(url, token).update_key(key_id, **changes), as_json)


@keys_app.command("revoke")
@exits_cleanly
def revoke(key_id: str, url: Url = envs.URL.default, token: Token = None, as_json: AsJson = False) -> None:
    """Revoke a key: the gateway refuses it from the next request on."""
    key = Client(url, token).revoke_key(key_id)
    if not as_json:
        err.print(f"revoked {key.id} ({key.name})")
    _show(key, as_json)


@keys_app.command("rotate")
@exits_cleanly
def rotate(
    key_id: str,
    overlap: Annotated[
        int,
        typer.Option(
            parser=_overlap,
            metavar="DURATION",
            show_default="1h",
            help="How long the old key keeps working: 0, 90m, 1h, 1d…",
        ),
    ] = 3600,
    url: Url = envs.URL.default,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Issue a new secret with the same scopes and limits; the old one works for the overlap."""
    key = Client(url, token).rotate_key(key_id, overlap)
    if not as_json:
        when = f"for {format_duration(overlap)} more" if overlap else "no longer"
        err.print(f"rotated {key_id} to {key.id}: the old key works {when}")
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
        table.add_row(row["namespace"], row["name"], str(row["requests"]), str(row["promptTokens"]),
                      str(row["completionTokens"]))  # fmt: skip
    table.add_row("[bold]total[/bold]", "", str(report["requests"]), str(report["promptTokens"]),
                  str(report["completionTokens"]))  # fmt: skip
    out.print(table)
    budget = report["budget"]
    limit = budget.get("limit")
    out.print(
        f"budget this {budget['period']} (since {budget['periodStart']}): {budget['used']} tokens used"
        + (f" of {limit}" if limit is not None else " (no limit)"),
        highlight=False,
    )
