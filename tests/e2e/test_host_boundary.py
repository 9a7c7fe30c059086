"""What a caller of a real `modelport up` can make the host run, or make it believe about itself.

- Writing what runs code on the host (image.custom.command, environment outside the safe list
  such as LD_PRELOAD, engine flags such as --trust-remote-code) needs the `host` scope; an admin
  key has it only if given, and cannot mint it. Custom commands also need the installation's
  `--allow-custom-commands`, even for the admin token. Refusals are 403s in the API's error
  shape, audited like any refused admin call. The switch holds at every launch too: restarted
  without it, `up` launches no custom replica made before, drains and stops any it adopts, and
  fails the endpoint saying why (audited once, kind "host").
- X-Forwarded-For counts only from `--trusted-proxy` networks: by default a loopback caller
  cannot claim an address a `private` endpoint admits, and a value that is not an address never
  becomes the address recorded in the audit trail.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.control_plane_process import ControlPlaneProcess, audit_cli, engine_processes

pytestmark = pytest.mark.timeout(600)

APP = str(Path(__file__).resolve().parents[1] / "support" / "custom_app.py")
CUSTOM = {"custom": {"command": [sys.executable, APP, "--port", "{port}", "--name", "{name}"]}}
GARBAGE = "not-an-ip<script>"


def start(data: Path, *args: str, allow_custom_commands: bool = False) -> ControlPlaneProcess:
    """A control plane to start with `with` (starting it here too left the first one running:
    `__enter__` starts another, which finds the store taken and exits)."""
    env = {"MODELPORT_REPLICA_PRELOAD": "0"}  # no idle preloaded Python: these tests serve little
    return ControlPlaneProcess(
        data, None, "--no-demo", *args, env=env, allow_custom_commands=allow_custom_commands
    )


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    """An installation with the defaults: no custom commands, no trusted proxy."""
    cp = start(tmp_path_factory.mktemp("closed") / "data")
    with cp:
        yield cp


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    """An installation that turned custom commands on and sits behind a proxy on loopback."""
    cp = start(tmp_path_factory.mktemp("opened") / "data", "--trusted-proxy", "127.0.0.1/32",
               allow_custom_commands=True)  # fmt: skip
    with cp:
        yield cp


def as_key(cp: ControlPlaneProcess, key: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key or cp.token}", **kw.pop("headers", {})}
    return httpx.request(method, f"{cp.url}{path}", headers=headers, timeout=30, **kw)


def new_key(cp: ControlPlaneProcess, scopes: list[str], by: str | None = None, **body: Any) -> dict[str, Any]:
    made = as_key(cp, by, "POST", "/v2/keys", json={"name": "k", "scopes": scopes, **body})
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def endpoint(name: str, model: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "model": {"repository": str(model), **extra}}


def refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error_type"] == "forbidden"
    assert all(word in body["error"] for word in words), body


def audit(cp: ControlPlaneProcess) -> list[dict[str, Any]]:
    done = audit_cli(cp.data_dir, "export")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_an_admin_key_cannot_write_code_the_host_runs(opened: ControlPlaneProcess, tiny_model: Path) -> None:
    made_key = new_key(opened, ["inference", "admin"])
    admin = made_key["key"]

    def create(name: str, **model: Any) -> httpx.Response:
        return as_key(opened, admin, "POST", "/v2/endpoint/default", json=endpoint(name, tiny_model, **model))

    def update(key: str | None, **model: Any) -> httpx.Response:
        return as_key(opened, key, "PUT", "/v2/endpoint/default/tuned", json={"model": model})

    refused(create("mine", image=CUSTOM), "model.image.custom.command", "host scope")
    refused(create("pre", env={"LD_PRELOAD": "/x.so"}), "model.env.LD_PRELOAD")
    refused(create("hub", secrets={"HF_ENDPOINT": "http://elsewhere"}), "model.secrets.HF_ENDPOINT")
    refused(create("rc", args=["--trust-remote-code"]), "model.args")
    # tuning is not host code: the same key may set it, and change what it made
    made = create("tuned", env={"OMP_NUM_THREADS": "1"}, args=["--max-model-len", "64"])
    assert made.status_code == 201, made.text
    assert as_key(opened, admin, "POST", "/v2/endpoint/default/tuned/pause").status_code == 200  # no replica
    refused(update(admin, env={"PYTHONPATH": "/tmp"}), "model.env.PYTHONPATH")
    # the admin token set LD_PRELOAD: an admin key may still change the rest, not LD_PRELOAD
    assert update(None, env={"LD_PRELOAD": ""}).status_code == 200
    retuned = update(admin, args=["--max-model-len", "32"])
    assert retuned.status_code == 200, retuned.text
    refused(update(admin, env={"LD_PRELOAD": "/x.so"}), "model.env.LD_PRELOAD")
    assert as_key(opened, None, "DELETE", "/v2/endpoint/default/tuned").status_code == 200

    # every refusal is in the audit trail, with who asked and why it was refused
    denials = [r for r in audit(opened) if r["actor"] == made_key["id"] and r["detail"]["status"] == 403]
    assert len(denials) == 6
    assert all("host" in r["detail"]["error"] for r in denials)


def test_an_admin_key_cannot_mint_more_power_than_it_has(opened: ControlPlaneProcess) -> None:
    admin = new_key(opened, ["inference", "admin"], endpoints=["team/*"])["key"]
    more = [({"scopes": ["host"]}, "more than"), ({"scopes": ["admin", "host"]}, "more than"),
            ({"endpoints": ["*"]}, "outside"), ({"endpoints": ["other/a"]}, "outside")]  # fmt: skip
    for body, why in more:
        refused(as_key(opened, admin, "POST", "/v2/keys", json={"name": "more", **body}), why)
    lesser = new_key(opened, ["inference"], by=admin, endpoints=["team/a"])
    assert lesser["endpoints"] == ["team/a"]
    refused(
        as_key(opened, admin, "PUT", f"/v2/keys/{lesser['id']}", json={"scopes": ["host", "admin"]}), "host"
    )
    refused(as_key(opened, admin, "PUT", f"/v2/keys/{lesser['id']}", json={"endpoints": ["*"]}), "outside")
    # a key with more power than the admin key: it may not rotate (a new secret of it), change or revoke it
    stronger = new_key(opened, ["admin", "host"])
    refused(as_key(opened, admin, "POST", f"/v2/keys/{stronger['id']}/rotate", json={}), "host")
    refused(as_key(opened, admin, "PUT", f"/v2/keys/{stronger['id']}", json={"scopes": ["admin"]}), "host")
    refused(as_key(opened, admin, "DELETE", f"/v2/keys/{stronger['id']}"), "host")
    # the admin token has every scope
    assert as_key(opened, None, "POST", f"/v2/keys/{stronger['id']}/rotate", json={}).status_code == 201


def test_custom_commands_need_the_installation_switch_and_the_host_scope(
    closed: ControlPlaneProcess, opened: ControlPlaneProcess, tiny_model: Path
) -> None:
    body = endpoint("mine", tiny_model, image=CUSTOM)
    # switched off: refused for everyone, the admin token and a host key too, saying how to turn it on
    host_closed = new_key(closed, ["inference", "admin", "host"])["key"]
    for key in (None, host_closed):
        refused(as_key(closed, key, "POST", "/v2/endpoint/default", json=body), "--allow-custom-commands")
    # switched on, with a host key: deployed and serving
    host = new_key(opened, ["inference", "admin", "host"])["key"]
    made = as_key(opened, host, "POST", "/v2/endpoint/default", json=body)
    assert made.status_code == 201, made.text
    opened.wait_for("mine", "running", timeout=120)
    chat = {"model": "mine", "messages": [{"role": "user", "content": "hello there"}]}
    reply = httpx.post(f"{opened.url}/endpoints/default/mine/v1/chat/completions", timeout=30,
                       headers={"authorization": f"Bearer {host}"}, json=chat)  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "hello there"
    assert as_key(opened, host, "DELETE", "/v2/endpoint/default/mine").status_code == 200


def paused_private(cp: ControlPlaneProcess, model: Path, networks: list[str]) -> None:
    """A private endpoint, paused: a caller its networks admit gets 503 (paused), others 403."""
    body = {**endpoint("priv", model), "type": "private", "traffic": {"allowNetworks": networks}}
    made = cp.api("POST", "/v2/endpoint/default", json=body)
    assert made.status_code == 201, made.text
    assert cp.api("POST", "/v2/endpoint/default/priv/pause").status_code == 200


def call_private(cp: ControlPlaneProcess, forwarded_for: str | None) -> int:
    headers = {**cp.headers, **({"x-forwarded-for": forwarded_for} if forwarded_for else {})}
    url = f"{cp.url}/endpoints/default/priv/v1/chat/completions"
    return httpx.post(url, headers=headers, json={"model": "priv", "messages": []}, timeout=30).status_code


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    closed: ControlPlaneProcess, opened: ControlPlaneProcess, tiny_model: Path
) -> None:
    for cp in (closed, opened):
        paused_private(cp, tiny_model, ["10.0.0.0/8"])
        assert call_private(cp, None) == 403  # loopback is not in 10.0.0.0/8
    assert call_private(closed, "10.1.2.3") == 403  # a loopback caller cannot claim 10.1.2.3
    assert call_private(opened, "10.1.2.3") == 503  # from the trusted proxy: admitted (and paused)
    assert call_private(opened, f"10.1.2.3, {GARBAGE}") == 403  # the proxy's hop is no address: unknown

    # what is recorded: the address the checks used, never the header's text
    for cp in (closed, opened):
        moved = as_key(cp, None, "PUT", "/v2/endpoint/default/priv", headers={"x-forwarded-for": GARBAGE},
                       json={"traffic": {"allowNetworks": ["127.0.0.0/8"]}})  # fmt: skip
        assert moved.status_code == 200, moved.text
        time.sleep(1.2)  # the loop publishes the new networks to the gateway within a tick
        # from the trusted proxy, a caller it names with no address is unknown, not the proxy
        assert call_private(cp, GARBAGE) == (503 if cp is closed else 403)
    assert call_private(opened, "10.1.2.3") == 403  # now only loopback: the proxy's caller is not
    time.sleep(1.5)  # usage (and its audit records) reach the store every second
    # "": the admin call the trusted proxy forwarded for a caller it named with no address
    for cp, sources in ((closed, {"127.0.0.1"}), (opened, {"127.0.0.1", "10.1.2.3", ""})):
        records = [r for r in audit(cp) if r["target"] == "default/priv"]
        assert {r["source"] for r in records} == sources  # 10.1.2.3: the call the trusted proxy forwarded
        assert {r["kind"] for r in records} == {"admin", "inference"}
        assert GARBAGE not in json.dumps(records)


def test_custom_commands_turned_off_after_the_create_hold_at_every_launch(
    tmp_path: Path, tiny_model: Path
) -> None:
    data = tmp_path / "data"
    env = {"MODELPORT_REPLICA_PRELOAD": "0"}

    def up(*args: str, allow: bool) -> ControlPlaneProcess:
        return ControlPlaneProcess(data, None, "--no-demo", *args, env=env, allow_custom_commands=allow)

    def failed_for_commands(cp: ControlPlaneProcess) -> dict[str, Any]:
        status = cp.wait_for("mine", "failed", timeout=30)["status"]
        assert isinstance(status, dict)
        assert status["message"].startswith("custom commands are off on this installation"), status
        assert "modelport up --allow-custom-commands" in status["message"]
        return status

    first = up("--keep-replicas", allow=True).start()
    try:
        made = first.api("POST", "/v2/endpoint/default", json=endpoint("mine", tiny_model, image=CUSTOM))
        assert made.status_code == 201, made.text
        first.wait_for("mine", "running", timeout=60)
    finally:
        first.stop()
    kept = engine_processes(data)
    assert kept, "--keep-replicas leaves the custom replica running"

    # restarted without the switch: the adopted replica is drained and stopped, and the status says so
    with up(allow=False) as cp:
        status = failed_for_commands(cp)
        assert "its running replica is drained and stopped" in status["message"]
        _, alive = psutil.wait_procs(kept, timeout=30)
        assert not alive
        reply = httpx.post(f"{cp.url}/endpoints/default/mine/v1/chat/completions", headers=cp.headers,
                           json={"model": "mine", "messages": []}, timeout=30)  # fmt: skip
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "endpoint_failed", reply.text

    # switched on again, an operator resumes it; a plain stop takes its replica down with `up`
    with up(allow=True) as cp:
        assert cp.api("POST", "/v2/endpoint/default/mine/resume").status_code == 200
        cp.wait_for("mine", "running", timeout=60)
    logs = set((data / "replicas").glob("*.log"))

    # restarted without the switch: nothing is launched at all
    with up(allow=False) as cp:
        status = failed_for_commands(cp)
        assert "drained" not in status["message"] and status["replicas"] == []
        time.sleep(1.5)  # a few loop ticks: still nothing launched, nothing audited twice
        assert cp.endpoint("mine")["status"]["replicas"] == []  # type: ignore[index]
        assert engine_processes(data) == []
        assert set((data / "replicas").glob("*.log")) == logs  # each launch would open a new log

    refusals = [r for r in audit(cp) if r["kind"] == "host"]
    assert [(r["actor"], r["action"], r["target"]) for r in refusals] == [
        ("control-plane", "launch replica", "default/mine")
    ] * 2  # once per start without the switch, not once per tick
    assert len(refusals[0]["detail"]["replica_ids"]) == 1 and refusals[1]["detail"]["replica_ids"] == []
    assert all(r["detail"]["refused"].startswith("custom commands are off") for r in refusals)
    assert audit_cli(data, "verify").returncode == 0
