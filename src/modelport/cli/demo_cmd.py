"""`modelport demo build`: make the offline demo model folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelport import envs
from modelport.models.demo import SHAPES, build_llama, ensure_demo_model

demo_app = typer.Typer(help="Build demo models offline (a random Llama with a ChatML tokenizer).")


def default_demo_dir(shape: str = "tiny") -> Path:
    return envs.data_dir() / "demo-models" / shape


@demo_app.command("build")
def build(
    out: Annotated[
        Path | None, typer.Argument(help="Folder to write; defaults to the data directory.")
    ] = None,
    shape: Annotated[str, typer.Option(help=f"Model shape: {', '.join(SHAPES)}.")] = "tiny",
    force: Annotated[bool, typer.Option(help="Rebuild even if the folder exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Build a random-weight Llama model folder (safetensors + tokenizer + chat template)."""
    if shape not in SHAPES:
        raise typer.BadParameter(
            f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}", param_hint="--shape"
        )
    target = out or default_demo_dir(shape)
    path = build_llama(target, SHAPES[shape]) if force else ensure_demo_model(target, shape)
    if as_json:
        typer.echo(json.dumps({"path": str(path), "shape": shape}))
    else:
        typer.echo(str(path))
