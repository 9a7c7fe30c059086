"""`modelport audit verify|export|purge`: the hash-chained audit trail, read from the store itself
(not through the API of the installation it audits)."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from modelport import envs
from modelport.cli.durations import parse_duration

audit_app = typer.Typer(help="Verify, export and purge the audit trail.", no_args_is_help=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(help="The control plane's store; default: MODELPORT_DATABASE_URL or the data dir's SQLite."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WITH_TEXT_HELP = "Add the kept texts of requests to endpoints that opted in (traffic.recordText)."


def _store(database_url: str | None) -> Any:
    from modelport.store.repository import Store

    return Store.open(database_url or envs.database_url())


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"expected a time such as 2026-12-01 or 2026-12-01T09:30Z, got {text!r}",
                                 param_hint=option) from None  # fmt: skip
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command("verify")
def verify_command(database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Check every record's hash and link; exit 1 naming the first record that fails."""
    from modelport.ledger.audit_chain import verify_texts

    store = _store(database_url)
    try:
        recorded: set[str] = set()
        report = store.audit.verify(recorded)
        texts_checked, text_problem = 0, None
        if report.ok and store.texts.count():  # kept texts (endpoints that opted in) must match too
            kept = ((t.request_id, t.request, t.completion, t.digest) for t in store.texts.kept(_now()))
            texts_checked, text_problem = verify_texts(kept, recorded)
    finally:
        store.close()
    ok = report.ok and text_problem is None
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "ok": ok, "texts_checked": texts_checked,
                               "reason": report.reason or text_problem or ""}))  # fmt: skip
    elif ok:
        since = f", after record {report.anchor_seq} (earlier ones purged)" if report.anchor_seq else ""
        plural = "texts match their records" if texts_checked != 1 else "text matches its record"
        texts = f"; {texts_checked} kept request {plural}" if texts_checked else ""
        typer.echo(f"audit trail verified: {report.checked} records intact{since}{texts}")
    elif not report.ok:
        typer.echo(f"audit trail BROKEN at record {report.first_bad_seq}: {report.reason}", err=True)
    else:
        typer.echo(f"audit trail BROKEN: {text_problem}", err=True)
    if not ok:
        raise typer.Exit(code=1)


def _now() -> datetime:
    return datetime.now(UTC)


@audit_app.command("export")
def export_command(
    start: Annotated[str | None, typer.Option("--from", help="From this time (ISO 8601, UTC).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to (not including) this time.")] = None,
    with_text: Annotated[bool, typer.Option("--with-text", help=WITH_TEXT_HELP)] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Records as JSON lines, with their hashes (so others can check the chain)."""
    store = _store(database_url)
    try:
        for batch in _batches(store.audit.records(_when(start, "--from"), _when(end, "--to"))):
            lines = [{**record.__dict__, "detail": json.loads(record.detail)} for record in batch]
            if with_text:
                _attach_texts(store, lines)
            sys.stdout.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    finally:
        store.close()


def _batches(records: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _attach_texts(store: Any, lines: list[dict[str, Any]]) -> None:
    """`text`: {request, completion} on each record whose texts are still kept, null once expired."""
    wanted: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        text = line["detail"].get("text")
        if isinstance(text, dict):
            wanted.setdefault(str(text.get("sha256")), []).append(line)
    kept = store.texts.by_digest(wanted, _now())
    for digest, same in wanted.items():
        found = kept.get(digest)
        for line in same:
            line["text"] = found and {"request": found.request, "completion": json.loads(found.completion)}


@audit_app.command("purge")
def purge_command(
    older_than: Annotated[str, typer.Option(help="Delete records older than this: 90d, 12h, 3600.")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old records; what is left still verifies (the last purged hash is kept)."""
    from modelport.ledger.audit_chain import timestamp

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    now = datetime.now(UTC)
    before = now - timedelta(seconds=seconds)
    store = _store(database_url)
    try:
        try:
            deleted = store.audit.purge_recorded(before, now, actor=f"cli:{getpass.getuser()}")
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"deleted": deleted, "before": timestamp(before)}))
    else:
        typer.echo(f"purged {deleted} audit records older than {timestamp(before)}")
