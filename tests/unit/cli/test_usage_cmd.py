"""`modelport usage` against the real SDK client over a mock transport: the units column in the
table, the CSV and the JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from modelport.cli import usage_cmd
from modelport.cli.main import app
from modelport.sdk import Client

runner = CliRunner(env={"COLUMNS": "250"})
COUNTS = {"requests": 2, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0}
PRICED = {"replica_seconds": 60.0, "hardware": [], "cost_usd": 0.0, "cost_per_million_tokens": None}
REPORT: dict[str, Any] = {
    "by": "endpoint", "from": None, "to": None, "at": "2026-12-01T10:00:00+00:00",
    "items": [
        {"namespace": "default", "endpoint": "asr", **COUNTS, "units": {"audio_seconds": 4.75}, **PRICED},
        {"namespace": "default", "endpoint": "chat", **COUNTS, "units": {}, **PRICED},
    ],
    "totals": {**COUNTS, "requests": 4, "units": {"audio_seconds": 4.75}, "replica_seconds": 120.0,
               "cost_usd": 0.0},
}  # fmt: skip


@pytest.fixture(autouse=True)
def api(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/usage"
        return httpx.Response(200, json=REPORT)

    def client(url: str, token: str | None = None) -> Client:
        return Client(url, token, transport=httpx.MockTransport(answer))

    monkeypatch.setattr(usage_cmd, "Client", client)


def usage(*args: str) -> str:
    result = runner.invoke(app, ["usage", "--url", "http://cp", "--token", "t0k", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_table_shows_each_endpoints_units() -> None:
    out = usage()
    assert "UNITS" in out
    # keyed by the endpoint cell, or "total" for the last row (its namespace cell; endpoint "-")
    rows = [[c.strip() for c in line.split("│")] for line in out.splitlines() if line.count("│") > 3]
    lines = {cells[1] if cells[1] == "total" else cells[2]: " ".join(cells) for cells in rows}
    assert "audio_seconds=4.75" in lines["asr"] and "audio_seconds" not in lines["chat"]
    assert "audio_seconds=4.75" in lines["total"]


def test_csv_and_json_carry_the_units() -> None:
    rows = list(csv.DictReader(io.StringIO(usage("--csv"))))
    assert [r["units"] for r in rows] == ["audio_seconds=4.75", "", "audio_seconds=4.75"]
    assert json.loads(usage("--json"))["items"][0]["units"] == {"audio_seconds": 4.75}
