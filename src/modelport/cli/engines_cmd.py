"""`modelport engines …`: install external engines (vLLM, llama.cpp) in their own venvs, list, remove.

Each engine and version gets a virtual environment under the engines folder
(MODELPORT_ENGINES_DIR, default <data dir>/engines): engines pin torch and transformers versions
that conflict with modelport's and with each other's. Endpoints with `model.image` vllm or
llamacpp run the newest complete install of their engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from modelport import envs
from modelport.launchers.engine_install import EngineInstall, find_engine, list_installs
from modelport.launchers.engine_setup import (
    DEFAULT_VERSIONS,
    INSTALLABLE,
    InstallError,
    InstallRun,
    Step,
    describe,
    folder_size,
    has_nvidia_gpu,
    recipe,
    register,
    remove,
)

engines_app = typer.Typer(
    help="External engines (vLLM, llama.cpp), each in its own virtual environment.\n\n"
    "Exit codes: 0 ok; 1 install failed; 2 bad arguments.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
EnginesDir = Annotated[
    Path | None,
    typer.Option(
        "--engines-dir", help=f"Engines folder (default: ${envs.ENGINES_DIR.name}, else <data dir>/engines)."
    ),
]


def _dir(path: Path | None) -> Path:
    return path or envs.engines_dir()


@engines_app.command("install")
def install_cmd(
    kind: Annotated[str, typer.Argument(help=f"Engine: {', '.join(INSTALLABLE)}.")],
    version: Annotated[str | None, typer.Option(help="Release to install (default: the tested one).")] = None,
    variant: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: cuda when an NVIDIA driver is loaded).")
    ] = None,
    engine_python: Annotated[
        str | None,
        typer.Option(help="Register your own install instead: the python of a venv that has the engine."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Reinstall even if this version is installed.")] = False,
    engines_dir: EnginesDir = None,
    as_json: AsJson = False,
) -> None:
    """Install an engine into <engines>/<kind>-<version> (vLLM ~3.4 GB; llama.cpp builds from source)."""
    root = _dir(engines_dir)
    try:
        if engine_python is not None:
            installed = register(kind, engine_python, root)
        else:
            installed = _install(kind, version, variant, force, root, quiet=as_json)
    except InstallError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}))
        else:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(code=1) from exc
    info = describe(installed)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    out.print(f"[green]installed[/green] {kind} {installed.version} at {installed.folder}", highlight=False)
    if "install_seconds" in info:
        out.print(f"took {info['install_seconds']} s; log: {installed.folder}/install.log", highlight=False)


def _install(
    kind: str, version: str | None, variant: str | None, force: bool, root: Path, quiet: bool
) -> EngineInstall:
    if kind not in INSTALLABLE:
        raise InstallError(
            f"modelport installs {', '.join(INSTALLABLE)}; for your own build of {kind}, pass --engine-python"
        )
    version = version or DEFAULT_VERSIONS[kind]
    folder = root / f"{kind}-{version}"
    existing = find_engine(kind, root)
    if not force and existing is not None and existing.folder == folder:
        if not quiet:
            out.print(
                f"{kind} {version} is installed already at {folder} (--force reinstalls)", highlight=False
            )
        return existing
    chosen = variant or ("cuda" if has_nvidia_gpu() else "cpu")
    plan = recipe(kind, version, folder, chosen)
    if quiet:
        return InstallRun(plan, folder).run()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[line]}", justify="left"),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(f"{kind} {version} ({chosen})", total=len(plan.steps), line="")

        def on_step(i: int, step: Step) -> None:
            progress.update(task, completed=i, description=f"{kind} {version}: {step.title}", line="")

        def on_line(line: str) -> None:
            progress.update(task, line=line[:60])

        installed = InstallRun(plan, folder, on_step, on_line).run()
        progress.update(task, completed=len(plan.steps), description=f"{kind} {version}: done", line="")
    return installed


@engines_app.command("list")
def list_cmd(engines_dir: EnginesDir = None, as_json: AsJson = False) -> None:
    """Installed engines: what endpoints of each image kind will run."""
    root = _dir(engines_dir)
    installs = list_installs(root)
    rows = []
    for inst in installs:
        info = describe(inst)
        registered = bool(info.get("registered"))
        info["size_bytes"] = 0 if registered or inst.folder is None else folder_size(inst.folder)
        info["in_use"] = find_engine(inst.kind, root) == inst
        rows.append(info)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print(
            f"no engines in {root}; install one with `modelport engines install vllm|llamacpp`",
            highlight=False,
        )
        return
    table = Table(title=f"engines in {root}")
    for column in ("engine", "version", "variant", "size", "installed", "used"):
        table.add_column(column, justify="right" if column == "size" else "left", no_wrap=True)
    table.add_column("python", overflow="fold")
    for r in rows:
        size = r["size_bytes"]
        assert isinstance(size, int)
        table.add_row(
            str(r["kind"]),
            str(r["version"]),
            str(r.get("variant", "registered" if r.get("registered") else "?")),
            f"{size / 1e9:.1f} GB" if size else "-",
            str(r.get("installed_at", "")).replace("T", " ")[:16],
            "yes" if r["in_use"] else "",
            str(r["python"] or r["executable"]),
        )
    out.print(table)


@engines_app.command("rm")
def rm_cmd(
    name: Annotated[str, typer.Argument(help="The install's folder name, e.g. vllm-0.32.0.")],
    engines_dir: EnginesDir = None,
    as_json: AsJson = False,
) -> None:
    """Remove an install (a registered one only loses its record; your venv is not touched)."""
    try:
        folder = remove(name, _dir(engines_dir))
    except InstallError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps({"removed": str(folder)}))
    else:
        out.print(f"removed {folder}", highlight=False)
