"""`modelport models …`: pull weights into the machine's cache, list, verify and remove them, and
convert a safetensors model to GGUF for llama.cpp.

Sources: a Hub id (org/name[@revision], through HF_ENDPOINT and HF_TOKEN), org/name/file.gguf,
or s3://bucket/prefix (MODELPORT_S3_ENDPOINT_URL). Replicas load from the cache, so a pulled
model serves with no network at all.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table

from modelport import envs
from modelport.launchers import gguf_convert
from modelport.models.cache import Manifest, ModelCache
from modelport.models.pull import PullProgress, default_ref, pull, resolve
from modelport.models.remote import PullError
from modelport.models.sources import ModelSource, SourceError, parse_source

models_app = typer.Typer(
    help="The weight cache: pull models from the Hub, a mirror or S3, then serve them offline.\n\n"
    "Exit codes: 0 ok; 1 pull, verification or conversion failed; 2 bad source or options; "
    "3 not in the cache.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache", help=f"Cache folder (default: ${envs.MODEL_CACHE.name}, else <data dir>/models)."
    ),
]


def _cache(path: Path | None) -> ModelCache:
    return ModelCache(path or envs.model_cache_dir())


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _summary(m: Manifest, path: Path) -> dict[str, Any]:
    return {
        "source": m.source,
        "kind": m.kind,
        "revision": m.revision,
        "refs": list(m.refs),
        "files": len(m.files),
        "bytes": m.total_bytes,
        "pulled_at": m.pulled_at,
        "path": str(path),
    }


class _Bars(PullProgress):
    """One overall bar (bytes, speed, time left) and one per file being fetched."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.total: TaskID | None = None
        self.current: TaskID | None = None

    def start(self, total_files: int, total_bytes: int) -> None:
        self.total = self.progress.add_task(f"{total_files} files", total=total_bytes)

    def file_started(self, path: str, size: int) -> None:
        self.current = self.progress.add_task(f"  {path}", total=size)

    def advance(self, nbytes: int) -> None:
        for task in (self.total, self.current):
            if task is not None:
                self.progress.advance(task, nbytes)

    def file_done(self, path: str, reused: bool) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None
        if reused:
            self.progress.console.print(f"  {path}: already in the cache")


def _source(text: str, revision: str | None) -> Any:
    try:
        source = parse_source(text, revision)
    except SourceError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if source.kind == "local":
        err.print(f"[red]{text} is a local path: serve it in place, there is nothing to pull[/red]")
        raise typer.Exit(2)
    return source


@models_app.command("pull")
def pull_cmd(
    source_text: Annotated[
        str, typer.Argument(metavar="SOURCE", help="org/name[@rev], org/name/f.gguf, s3://…")
    ],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit (Hub).")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Also fetch pickle weights (*.bin, *.pt) when there are no safetensors.")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Also fetch the repository's *.py model code.")
    ] = False,
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Download a model into the cache, verifying every file; files already there are reused."""
    source = _source(source_text, revision)
    cache = _cache(cache_dir)
    columns = (
        TextColumn("{task.description}", table_column=Column(ratio=2, overflow="ellipsis", no_wrap=True)),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=err, disable=as_json, transient=False) as progress:
            result = pull(
                source,
                cache,
                allow_pickle=allow_pickle,
                trust_remote_code=trust_remote_code,
                progress=_Bars(progress),
            )
    except PullError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    summary = _summary(result.manifest, result.path)
    summary.update(downloaded_bytes=result.downloaded_bytes, reused_bytes=result.reused_bytes)
    if as_json:
        print(json.dumps(summary))
        return
    err.print(
        f"[green]pulled[/green] {result.manifest.source} @ {result.manifest.revision} "
        f"({_size(result.manifest.total_bytes)}; {_size(result.downloaded_bytes)} downloaded, "
        f"{_size(result.reused_bytes)} reused)"
    )
    out.print(str(result.path))


@models_app.command("list")
def list_cmd(cache_dir: CacheDir = None, as_json: AsJson = False) -> None:
    """Every cached revision: source, revision, refs, size, when it was pulled."""
    cache = _cache(cache_dir)
    rows = [_summary(m, cache.path_of(m)) for m in cache.manifests()]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        err.print("the cache is empty; `modelport models pull SOURCE` adds a model")
        return
    table = Table("source", "revision", "refs", "files", Column("size", justify="right"), "pulled")
    for row in rows:
        pulled = dt.datetime.fromtimestamp(row["pulled_at"]).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            row["source"],
            row["revision"][:12],
            ",".join(row["refs"]),
            str(row["files"]),
            _size(row["bytes"]),
            pulled,
        )
    out.print(table)


def _find(cache: ModelCache, text: str, revision: str | None) -> list[Manifest]:
    source = _source(text, revision)
    if source.revision is None:
        found = [m for m in cache.manifests() if m.key == source.key]
    else:
        one = cache.lookup(source, default_ref(source))
        found = [one] if one is not None else []
    if not found:
        err.print(f"[red]{source.display()} is not in the cache ({cache.root})[/red]")
        raise typer.Exit(3)
    return found


@models_app.command("verify")
def verify_cmd(
    source_text: Annotated[
        str | None, typer.Argument(metavar="[SOURCE]", help="Default: every cached model.")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Only this revision.")] = None,
    quick: Annotated[bool, typer.Option(help="Sizes and headers only, no re-hashing.")] = False,
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Re-check cached files against their recorded sizes and sha256, and their formats."""
    cache = _cache(cache_dir)
    manifests = _find(cache, source_text, revision) if source_text else cache.manifests()
    results = []
    with Progress(console=err, disable=as_json, transient=True) as progress:
        task = progress.add_task("verifying", total=len(manifests))
        for m in manifests:
            results.append(
                {"source": m.source, "revision": m.revision, "problems": cache.verify(m, full=not quick)}
            )
            progress.advance(task)
    if as_json:
        print(json.dumps(results))
    else:
        for r in results:
            status = "[green]ok[/green]" if not r["problems"] else "[red]damaged[/red]"
            out.print(f"{status} {r['source']} @ {r['revision'][:12]}")
            for problem in r["problems"]:
                out.print(f"    {problem}")
        if any(r["problems"] for r in results):
            err.print("fix: `modelport models rm SOURCE` then `modelport models pull SOURCE`")
    if any(r["problems"] for r in results):
        raise typer.Exit(1)


@models_app.command("rm")
def rm_cmd(
    source_text: Annotated[str, typer.Argument(metavar="SOURCE")],
    revision: Annotated[
        str | None, typer.Option(help="Only this revision (default: all cached revisions).")
    ] = None,
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Remove cached revisions; blobs no other revision uses are deleted."""
    cache = _cache(cache_dir)
    freed = 0
    removed = []
    for m in _find(cache, source_text, revision):
        with cache.lock(m.key):
            freed += cache.remove(m)
        removed.append({"source": m.source, "revision": m.revision})
    if as_json:
        print(json.dumps({"removed": removed, "freed_bytes": freed}))
        return
    for r in removed:
        out.print(f"removed {r['source']} @ {r['revision'][:12]}")
    out.print(f"freed {_size(freed)}")


def _convert_source(text: str, revision: str | None, cache: ModelCache) -> tuple[ModelSource, Path]:
    """SOURCE as a local folder (any existing path, as in `plan`), else a pulled model, offline."""
    local = Path(text).expanduser()
    typed = str(local.absolute()) if local.exists() else text
    try:
        return parse_source(typed, revision), resolve(typed, revision, cache, pull_missing=False)
    except SourceError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    except PullError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(3) from None


@models_app.command("convert")
def convert_cmd(
    source_text: Annotated[
        str, typer.Argument(metavar="SOURCE", help="A model folder, or a pulled org/name[@rev] or s3://…")
    ],
    to: Annotated[str, typer.Option("--to", help="Target format: gguf.")],
    quant: Annotated[
        str,
        typer.Option(
            help=f"Output type: {', '.join(gguf_convert.OUT_TYPES)} (k-quants need llama-quantize)."
        ),
    ] = gguf_convert.DEFAULT_OUT_TYPE,
    out_path: Annotated[
        str | None, typer.Option("--out", help="Output file or folder (default: ./<model>-<quant>.gguf).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    sdist: Annotated[
        Path | None,
        typer.Option(
            help="A llama_cpp_python-<version>.tar.gz to take the converter from "
            "(default: the installed llama.cpp engine's)."
        ),
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit of a pulled model.")] = None,
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Convert a safetensors model to one GGUF file with llama.cpp's own converter, offline."""
    if to.strip().lower() != "gguf":
        err.print(f"[red]cannot convert to {escape(repr(to))}: gguf is the only target[/red]")
        raise typer.Exit(2)
    source, model_dir = _convert_source(source_text, revision, _cache(cache_dir))
    try:
        out_type = gguf_convert.check_out_type(quant)
        gguf_convert.check_model_folder(model_dir)
        name = gguf_convert.model_name(source)
        output = gguf_convert.output_path(out_path, name, out_type, Path.cwd(), force)
    except gguf_convert.ConvertError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, disable=as_json, transient=True) as progress:
            archive = sdist or gguf_convert.engine_sdist(envs.engines_dir())
            task = progress.add_task(f"extracting llama.cpp's converter from {archive.name}", total=None)
            converter = gguf_convert.ensure_converter(archive)
            label = f"converting {escape(name)} to {escape(output.name)}"
            progress.update(task, description=label)

            def show(line: str) -> None:
                progress.update(task, description=f"{label} [dim]{escape(line[:80])}[/dim]")

            result = gguf_convert.convert(model_dir, output, out_type, converter, name, on_line=show)
    except gguf_convert.ConvertFailed as exc:  # the reason only: the traceback stays in the log
        err.print(f"[red]{escape(str(exc))}[/red]\nfull log: {escape(str(exc.log))}")
        raise typer.Exit(1) from None
    except gguf_convert.ConvertError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    summary = {
        "source": source.display(),
        "output": str(result.output),
        "bytes": result.bytes,
        "type": result.out_type,
        "tensors": result.tensors,
        "seconds": round(result.seconds, 2),
        "converter": archive.name,
        "warnings": list(result.warnings),
    }
    if as_json:
        print(json.dumps(summary))
        return
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    table = Table(show_header=False, box=None)
    for key, value in (
        ("output", str(result.output)),
        ("size", _size(result.bytes)),
        ("type", result.out_type),
        ("tensors", str(result.tensors)),
        ("time", f"{result.seconds:.1f} s"),
        ("converter", f"llama.cpp from {archive.name}"),
    ):
        table.add_row(key, value)
    out.print(table)
