"""`modelport up`: control plane + gateway + (by default) a demo endpoint, in one process."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from modelport import envs, logs


def up(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the API and every endpoint URL.")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the store (default: SQLite in the data directory).",
            envvar=envs.DATABASE_URL.name,
        ),
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL clients reach this server at (default: http://HOST:PORT).")
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Create the offline demo endpoint `demo` if it does not exist.")
    ] = True,
    keep_replicas: Annotated[
        bool, typer.Option(help="On exit leave replicas running; the next `up` re-adopts them.")
    ] = False,
    hold_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a request waits for a starting endpoint; a request's X-Scale-Up-Timeout overrides."
        ),
    ] = 120.0,
    private_network: Annotated[
        list[str] | None,
        typer.Option(
            help="CIDR that `private` endpoints accept callers from (repeat; an endpoint's "
            "traffic.allowNetworks overrides). Default: loopback and the RFC 1918 ranges."
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="CIDR of a reverse proxy in front of this server whose X-Forwarded-For names the "
            "caller (repeat). Default: none; every caller is its TCP peer address, whatever it sends."
        ),
    ] = None,
    allow_custom_commands: Annotated[
        bool,
        typer.Option(
            help="Accept endpoints with image.custom.command: a command run on this host, written by "
            "the admin token or a key with the host scope. Off: refused for everyone.",
            envvar=envs.ALLOW_CUSTOM_COMMANDS.name,
        ),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error.", envvar=envs.LOG_LEVEL.name)
    ] = envs.LOG_LEVEL.default,
) -> None:
    """Run the control plane (v2 API), the gateway and the control loop; Ctrl-C stops all, replicas too."""
    import uvicorn

    from modelport.auth.admin_token import ensure_admin_token
    from modelport.control.app import ControlConfig, create_control_app
    from modelport.models.demo import ensure_demo_model
    from modelport.store.repository import StoreBusy

    logs.configure(log_level)
    for chatty in ("httpx", "alembic"):  # a health probe every 0.5 s per replica is not news
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    data = envs.data_dir()
    token_path = envs.admin_token_path()
    try:
        token_hash, new_token = ensure_admin_token(token_path)
    except PermissionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if new_token:
        typer.echo(
            f"Admin token (shown once; saved with owner-only permissions to {token_path}):\n  {new_token}",
            err=True,
        )
    bootstrap = []
    if demo:
        model_dir = ensure_demo_model(data / "demo-models" / "tiny")
        bootstrap.append({"name": "demo", "type": "protected", "model": {"repository": str(model_dir)}})
    base = (public_url or f"http://{host}:{port}").rstrip("/")
    config = ControlConfig(
        database_url=database_url or envs.database_url(),
        public_url=base,
        admin_token_hash=token_hash,
        replica_log_dir=data / "replicas",
        keep_replicas_on_exit=keep_replicas,
        bootstrap=bootstrap,
        hold_s=hold_timeout,
        allow_custom_commands=allow_custom_commands,
    )
    if private_network:
        config.private_networks = _networks("--private-network", private_network)
    if trusted_proxy:
        config.trusted_proxies = _networks("--trusted-proxy", trusted_proxy)
    try:
        app = create_control_app(config)
    except StoreBusy as exc:
        typer.echo(f"error: {exc}; stop it first, or give this one its own --database-url", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"modelport: control plane on {base} (API docs {base}/docs)", err=True)
    if demo:
        typer.echo(
            f"modelport: demo endpoint {base}/endpoints/default/demo (OpenAI base_url: …/v1)", err=True
        )
    # uvicorn would take X-Forwarded-For from any loopback peer; the app reads it only from the
    # operator's --trusted-proxy networks (ControlPlaneApp)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False, proxy_headers=False)


def _networks(option: str, values: list[str]) -> list[str]:
    """CIDRs given to `option`, checked (exit 2 naming the option when one does not parse)."""
    from modelport.gateway.access import parse_networks

    try:
        parse_networks(values)
    except ValueError as exc:
        typer.echo(f"error: {option}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    return list(values)
