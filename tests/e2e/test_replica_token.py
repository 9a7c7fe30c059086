"""A replica answers only the gateway: a process on the host that calls a replica's own loopback
port directly, without the replica's token, is refused (it would skip keys, limits, metering and
audit), while the same request through the gateway is served."""

from __future__ import annotations

from pathlib import Path

import httpx

from modelport import Client
from modelport.runtime.replica_token import replica_token
from tests.support.control_plane_process import ControlPlaneProcess, replica_processes

BODY = {"model": "x", "prompt": "once upon a time", "max_tokens": 4}


def replica_port(data_dir: Path) -> int:
    (proc,) = replica_processes(data_dir)
    argv = proc.cmdline()
    return int(argv[argv.index("--port") + 1])


def test_a_replica_refuses_callers_without_its_token_and_serves_the_gateway(
    tmp_path: Path, tiny_model: Path
) -> None:
    data = tmp_path / "data"
    with ControlPlaneProcess(data, None, "--no-demo") as cp:
        ep = Client(cp.url, token=cp.token).create_endpoint("guarded", model=str(tiny_model))
        ep.wait(timeout=180, poll_interval=0.3)
        replica = f"http://127.0.0.1:{replica_port(data)}"

        direct = httpx.post(f"{replica}/v1/completions", json=BODY, timeout=30)
        assert direct.status_code == 401, direct.text
        assert direct.json()["error"]["type"] == "authentication_error"  # the route's own dialect
        tgi = httpx.post(f"{replica}/generate", json={"inputs": "hi"}, timeout=30)
        assert tgi.status_code == 401 and "error_type" in tgi.json()
        # a key of the gateway, or the admin token, is no replica token
        wrong = httpx.post(f"{replica}/v1/completions", json=BODY, headers=cp.headers, timeout=30)
        assert wrong.status_code == 401
        # what the control plane probes and scrapes stays open
        assert httpx.get(f"{replica}/health", timeout=10).status_code == 200
        assert httpx.get(f"{replica}/metrics", timeout=10).status_code == 200

        through = httpx.post(f"{ep.url}/v1/completions", json=BODY, headers=cp.headers, timeout=60)
        assert through.status_code == 200, through.text
        assert through.json()["usage"]["completion_tokens"] == 4

        # the token is derived from the replica id: the one a restarted control plane computes
        logs = cp.api("GET", "/v2/endpoint/default/guarded/logs")
        (record,) = logs.json()["replicas"]
        token = replica_token(record["id"], data / "replica-secret")
        own = httpx.post(
            f"{replica}/v1/completions", json=BODY, headers={"authorization": f"Bearer {token}"}, timeout=60
        )
        assert own.status_code == 200, own.text

        # and it shows nowhere: /v2, the control plane's and the replica's logs, the store, /metrics
        shown = [
            cp.api("GET", "/v2/endpoint/default/guarded").text,
            cp.api("GET", "/metrics").text,
            logs.text,
        ]
        assert not any(token in text for text in shown)
    for path in data.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
