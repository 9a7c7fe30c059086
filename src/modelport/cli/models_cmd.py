"""`modelport models …`: pull weights into the machine's cache, list, verify and remove them.

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
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table

from modelport import envs
from modelport.models.cache import Manifest, ModelCache
from modelport.models.pull import PullProgress, default_ref, pull
from modelport.models.remote import PullError
from modelport.models.sources import SourceError, parse_source

models_app = typer.Typer(
    help="The weight cache: pull models from the Hub, a mirror or S3, then serve them offline.\n\n"
    "Exit codes: 0 ok; 1 pull or verification failed; 2 bad source; 3 not in the cache.",
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
