"""`modelport keys …` against the real SDK client over a mock transport: requests, output, exit codes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from modelport.cli import durations, keys_cmd
from modelport.cli.main import app
from modelport.sdk import Client
from tests.unit.sdk.test_api_keys import KEY_ID, SECRET, USAGE, wire_key

runner = CliRunner(env={"COLUMNS": "200"})
LIMITED = {"requestsPerMinute": 60, "tokensPerMinute": None, "tokenBudget": 5000, "budgetPeriod": "day"}


class Api:
    """The control plane's keys routes, canned: (method, path) → (status, JSON); records requests."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.seen.append((request.method, request.url.path, body))
        status, reply = self.routes.get(
            (request.method, request.url.path), (404, {"error": "no such route", "error_type": "not_found"})
        )
        return httpx.Response(status, json=reply)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Api:
    fake = Api({})

    def client(url: str, token: str | None = None, namespace: str = "default") -> Client:
        assert (url, token) == ("http://cp", "t0k")
        return Client(url, token, namespace, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(keys_cmd, "Client", client)
    return fake


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│") if cell.strip()]


def keys(*args: str) -> Any:
    return runner.invoke(app, ["keys", *args, "--url", "http://cp", "--token", "t0k"])


def test_create_sends_the_options_and_shows_the_secret_once(api: Api) -> None:
    api.routes[("POST", "/v2/keys")] = (201, wire_key(name="team-ci", limits=LIMITED, key=SECRET))
    result = keys(
        "create", "team-ci", "--scope", "inference", "--scope", "admin", "--endpoint", "default/demo",
        "--endpoint", "team/*", "--expires-in", "30d", "--rpm", "60", "--budget", "5000",
        "--budget-period", "day",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert api.seen == [
        (
            "POST",
            "/v2/keys",
            {
                "name": "team-ci",
                "scopes": ["inference", "admin"],
                "endpoints": ["default/demo", "team/*"],
                "expiresIn": 30 * 86400,
                "limits": {"requestsPerMinute": 60, "tokenBudget": 5000, "budgetPeriod": "day"},
            },
        )
    ]
    assert KEY_ID in result.stdout and "team-ci" in result.stdout
    assert "5000 tokens per day" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == SECRET  # last, alone on its line, easy to copy
    assert "shown only this once" in result.stderr and "cannot be retrieved again" in result.stderr
    assert SECRET not in result.stderr


def test_create_json_has_the_secret_and_nothing_else_on_stdout(api: Api) -> None:
    api.routes[("POST", "/v2/keys")] = (201, wire_key(key=SECRET))
    result = keys("create", "ci", "--json")
    assert result.exit_code == 0, result.output
    assert api.seen == [("POST", "/v2/keys", {"name": "ci"})]
    assert json.loads(result.stdout) == wire_key(key=SECRET)
    assert result.stderr == ""


def test_list_table_and_json(api: Api) -> None:
    items = [
        wire_key(limits=LIMITED, expiresAt="2026-12-01T00:00:00+00:00"),
        wire_key(id="ba9876543210", name="old", status="revoked", scopes=["admin"], endpoints=["team/*"]),
    ]
    api.routes[("GET", "/v2/keys")] = (200, {"items": items})
    table = keys("list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert all(h in lines[1] for h in ("ID", "NAME", "STATUS", "SCOPES", "ENDPOINTS", "LIMITS", "EXPIRES"))
    first = next(line for line in lines if KEY_ID in line)
    assert "active" in first and "60 req/min, 5000 tok/day" in first and "2026-12-01" in first
    second = next(line for line in lines if "ba9876543210" in line)
    assert "revoked" in second and "team/*" in second and "never" in second
    assert json.loads(keys("list", "--json").stdout) == {"items": items}


def test_describe_never_shows_a_secret(api: Api) -> None:
    api.routes[("GET", f"/v2/keys/{KEY_ID}")] = (200, wire_key(rotatedTo="ffffffffffff"))
    result = keys("describe", KEY_ID)
    assert result.exit_code == 0, result.output
    assert "rotated to" in result.stdout and "ffffffffffff" in result.stdout
    assert "expires" in result.stdout and "never" in result.stdout
    assert "shown only this once" not in result.output


def test_update_sends_only_what_was_given(api: Api) -> None:
    api.routes[("PUT", f"/v2/keys/{KEY_ID}")] = (200, wire_key(name="renamed"))
    result = keys("update", KEY_ID, "--name", "renamed", "--tpm", "900", "--expires-in", "12h")
    assert result.exit_code == 0, result.output
    assert api.seen == [
        (
            "PUT",
            f"/v2/keys/{KEY_ID}",
            {"name": "renamed", "expiresIn": 43200, "limits": {"tokensPerMinute": 900}},
        )
    ]
    assert "renamed" in result.stdout


def test_update_clear_sends_nulls(api: Api) -> None:
    api.routes[("PUT", f"/v2/keys/{KEY_ID}")] = (200, wire_key())
    result = keys("update", KEY_ID, "--clear", "rpm", "--clear", "expiry", "--budget", "10")
    assert result.exit_code == 0, result.output
    body = {"expiresAt": None, "limits": {"tokenBudget": 10, "requestsPerMinute": None}}
    assert api.seen == [("PUT", f"/v2/keys/{KEY_ID}", body)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to change"),
        (("--clear", "rpm", "--rpm", "5"), "contradicts"),
        (("--clear", "expiry", "--expires-in", "1h"), "contradicts"),
        (("--rpm", "0"), "--rpm"),
        (("--budget-period", "week"), "--budget-period"),
        (("--scope", "root"), "--scope"),
    ],
)
def test_update_usage_errors_exit_2_without_a_call(api: Api, args: tuple[str, ...], message: str) -> None:
    result = keys("update", KEY_ID, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert api.seen == []


def test_revoke(api: Api) -> None:
    revoked = wire_key(status="revoked", revokedAt="2026-11-22T13:00:00+00:00")
    api.routes[("DELETE", f"/v2/keys/{KEY_ID}")] = (200, revoked)
    result = keys("revoke", KEY_ID)
    assert result.exit_code == 0, result.output
    assert api.seen == [("DELETE", f"/v2/keys/{KEY_ID}", None)]
    assert f"revoked {KEY_ID} (ci)" in result.stderr
    assert "2026-11-22T13:00:00+00:00" in result.stdout
    assert json.loads(keys("revoke", KEY_ID, "--json").stdout) == revoked


@pytest.mark.parametrize(
    ("option", "seconds"), [((), 3600), (("--overlap", "90m"), 5400), (("--overlap", "0"), 0)]
)
def test_rotate_sends_the_overlap_and_shows_the_new_secret_once(
    api: Api, option: tuple[str, ...], seconds: int
) -> None:
    fresh = wire_key(id="ffffffffffff", prefix="mp_ffffffffffff", key="mp_ffffffffffff_new")
    api.routes[("POST", f"/v2/keys/{KEY_ID}/rotate")] = (201, fresh)
    result = keys("rotate", KEY_ID, *option)
    assert result.exit_code == 0, result.output
    assert api.seen == [("POST", f"/v2/keys/{KEY_ID}/rotate", {"overlapSeconds": seconds})]
    assert result.stdout.rstrip().splitlines()[-1] == "mp_ffffffffffff_new"
    assert "shown only this once" in result.stderr
    assert f"rotated {KEY_ID} to ffffffffffff" in result.stderr
    assert ("works no longer" if seconds == 0 else "works for ") in result.stderr


def test_rotate_json(api: Api) -> None:
    fresh = wire_key(id="ffffffffffff", key="mp_ffffffffffff_new")
    api.routes[("POST", f"/v2/keys/{KEY_ID}/rotate")] = (201, fresh)
    result = keys("rotate", KEY_ID, "--json", "--overlap", "1d")
    assert json.loads(result.stdout)["key"] == "mp_ffffffffffff_new"
    assert api.seen[0][2] == {"overlapSeconds": 86400}


def test_usage_table_and_json(api: Api) -> None:
    api.routes[("GET", f"/v2/keys/{KEY_ID}/usage")] = (200, USAGE)
    result = keys("usage", KEY_ID)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "demo" in line)
    assert cells(row) == ["default", "demo", "3", "30", "12"]
    total = next(line for line in result.stdout.splitlines() if "total" in line)
    assert cells(total) == ["total", "3", "30", "12"]
    assert "budget this day (since 2026-11-22T00:00:00+00:00): 42 tokens used of 1000" in result.stdout
    assert json.loads(keys("usage", KEY_ID, "--json").stdout) == USAGE


def test_usage_without_a_budget(api: Api) -> None:
    report = {**USAGE, "byEndpoint": [], "budget": {**USAGE["budget"], "limit": None}}  # type: ignore[dict-item]
    api.routes[("GET", f"/v2/keys/{KEY_ID}/usage")] = (200, report)
    assert "42 tokens used (no limit)" in keys("usage", KEY_ID).stdout


@pytest.mark.parametrize("bad", ["3w", "0", "0d", "-5", "1.5h", "abc", "", "1h30m"])
def test_bad_lifetime_is_a_usage_error(api: Api, bad: str) -> None:
    result = keys("create", "ci", "--expires-in", bad)
    assert result.exit_code == 2, result.output
    assert "--expires-in" in result.output and "expected a duration such as" in result.output
    assert api.seen == []


@pytest.mark.parametrize("bad", ["-1", "soon", "5y"])
def test_bad_overlap_is_a_usage_error(api: Api, bad: str) -> None:
    result = keys("rotate", KEY_ID, "--overlap", bad)
    assert result.exit_code == 2, result.output
    assert "--overlap" in result.output
    assert api.seen == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), (" 2H ", 7200)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert durations.parse_duration(text) == seconds


def test_parse_duration_zero_and_errors() -> None:
    assert durations.parse_duration("0", allow_zero=True) == 0
    with pytest.raises(ValueError, match=r"more than 0\), got '0'"):
        durations.parse_duration("0")
    with pytest.raises(ValueError, match="expected a duration such as 3600"):
        durations.parse_duration("ten minutes")


def test_format_duration() -> None:
    assert [durations.format_duration(s) for s in (0, 45, 5400, 3600, 86400 * 2, 90)] == [
        "0s", "45s", "90m", "1h", "2d", "90s"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "code", "text"),
    [
        (404, {"error": "no API key nope", "error_type": "not_found"}, 3, "no API key nope"),
        (422, {"error": "bad name", "error_type": "validation", "field": "name"}, 2, "bad name (field name)"),
        (401, {"error": "admin token required", "error_type": "unauthorized"}, 1, "admin token required"),
    ],
)
def test_api_errors_map_to_exit_codes(
    api: Api, status: int, body: dict[str, Any], code: int, text: str
) -> None:
    api.routes[("GET", "/v2/keys/nope")] = (status, body)
    result = keys("describe", "nope")
    assert result.exit_code == code, result.output
    assert text in result.stderr and result.stdout == ""
