"""LocalRuntime on real processes: a tiny HTTP replica script, the real engine, a killed control plane."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from modelport.runtime.base import LaunchSpec, ReplicaHandle, ReplicaObservation, ReplicaPhase
from modelport.runtime.local import EXIT_LINES, LocalRuntime
from modelport.runtime.replica_token import replica_token

pytestmark = pytest.mark.timeout(120)

# A replica: prints 30 lines, serves /health (503 until --delay has passed, then 200), exits 0 on
# SIGTERM (or ignores it), and optionally forks a grandchild that exits on SIGTERM or ignores it.
FAKE_REPLICA = """
import argparse, os, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--ignore-term", action="store_true")
parser.add_argument("--grandchild", choices=["term", "ignore"])
parser.add_argument("--as-grandchild", choices=["term", "ignore"])
args = parser.parse_args()
started = time.monotonic()

if args.as_grandchild:
    def grandchild_term(signum, frame):
        print("grandchild got SIGTERM")
        sys.exit(0)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.as_grandchild == "ignore" else grandchild_term)
    print("grandchild ready")
    time.sleep(600)
    sys.exit(0)

def on_term(signum, frame):
    print("got SIGTERM")
    if not args.ignore_term:
        sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
if args.grandchild:
    grandchild = subprocess.Popen([sys.executable, "-u", __file__, "--as-grandchild", args.grandchild])
    print("grandchild", grandchild.pid)
print("greeting:", os.environ.get("FAKE_GREETING"))
for i in range(30):
    print("line", i)

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        ready = time.monotonic() - started >= args.delay
        self.send_response(200 if self.path == "/health" and ready else 503)
        self.end_headers()

    def log_message(self, *a):
        pass

HTTPServer(("127.0.0.1", args.port), Health).serve_forever()
"""

# A control plane that starts one replica, prints its handle and waits to be SIGKILLed.
CONTROL_PLANE = """
import asyncio, json, sys
from pathlib import Path
from modelport.runtime.base import LaunchSpec
from modelport.runtime.local import LocalRuntime

async def main():
    runtime = LocalRuntime(Path(sys.argv[1]))
    handle = await runtime.start(LaunchSpec(sys.argv[2], json.loads(sys.argv[3]), {}))
    print(json.dumps(handle.to_json()), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""

# every replica is a session leader: its pid is the session id of all it starts (checked for leaks)
_sessions: set[int] = set()


@pytest.fixture(scope="module", autouse=True)
def no_leaked_processes() -> Iterator[None]:
    yield
    leaked = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) in _sessions and proc.status() != psutil.STATUS_ZOMBIE:
                leaked.append(proc)
    for proc in leaked:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    assert not leaked, f"replica processes left running: {leaked}"


@pytest.fixture(scope="module")
def fake_replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scripts") / "fake_replica.py"
    path.write_text(FAKE_REPLICA)
    return path


class Harness:
    """A LocalRuntime whose replicas are all stopped when the test ends, pass or fail."""

    def __init__(self, log_dir: Path, script: Path) -> None:
        self.runtime = LocalRuntime(log_dir)
        self.script = script
        self.handles: list[ReplicaHandle] = []

    def track(self, handle: ReplicaHandle) -> ReplicaHandle:
        _sessions.add(handle.pid)
        self.handles.append(handle)
        return handle

    async def start(self, command: list[str], env: dict[str, str] | None = None) -> ReplicaHandle:
        return self.track(await self.runtime.start(LaunchSpec(uuid.uuid4().hex, command, env or {})))

    async def start_fake(self, *args: str, env: dict[str, str] | None = None) -> ReplicaHandle:
        return await self.start([sys.executable, "-u", str(self.script), "--port", "{port}", *args], env)

    async def wait_for(
        self, handle: ReplicaHandle, phase: ReplicaPhase, timeout: float = 20.0
    ) -> ReplicaObservation:
        deadline = time.monotonic() + timeout
        while (seen := await self.runtime.observe(handle)).phase != phase:
            if time.monotonic() > deadline:
                log = "\n".join(await self.runtime.logs(handle, 30))
                raise AssertionError(f"still {seen.phase} after {timeout} s, not {phase}; log:\n{log}")
            await asyncio.sleep(0.1)
        return seen

    async def aclose(self) -> None:
        for handle in self.handles:
            await self.runtime.stop(handle, grace_s=5)
        await self.runtime.close()


def run(tmp_path: Path, script: Path, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        harness = Harness(tmp_path / "logs", script)
        try:
            await scenario(harness)
        finally:
            await harness.aclose()

    asyncio.run(main())


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans are reaped by whatever init the machine has, maybe late)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        await asyncio.sleep(0.05)


async def grandchild_pid(h: Harness, handle: ReplicaHandle) -> int:
    """The grandchild's pid, once it has set up its SIGTERM handling."""
    deadline = time.monotonic() + 10
    while "grandchild ready" not in (lines := await h.runtime.logs(handle)):
        assert time.monotonic() < deadline, lines
        await asyncio.sleep(0.05)
    return int(next(line for line in lines if line.startswith("grandchild ")).split()[1])


def test_starting_then_ready(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake("--delay", "1.5")
        assert (handle.runtime, handle.health_path) == ("local", "/health")
        first = await h.runtime.observe(handle)
        assert (first.phase, first.exit_code, first.last_lines) == (ReplicaPhase.STARTING, None, [])
        ready = await h.wait_for(handle, ReplicaPhase.READY)
        assert (ready.exit_code, ready.last_lines) == (None, [])
        address = h.runtime.address(handle)
        assert address == f"http://127.0.0.1:{handle.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{address}/health")).status_code == 200

    run(tmp_path, fake_replica, scenario)


def test_log_file_env_and_tail(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake(env={"FAKE_GREETING": "hello"})
        await h.wait_for(handle, ReplicaPhase.READY)
        log_path = Path(handle.log_path)
        assert log_path == tmp_path / "logs" / f"{handle.replica_id}.log"
        assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
        assert await h.runtime.logs(handle, tail=3) == ["line 27", "line 28", "line 29"]
        assert "greeting: hello" in await h.runtime.logs(handle)
        assert await h.runtime.logs(handle, tail=0) == []
        await h.runtime.stop(handle)
        assert (await h.runtime.logs(handle, tail=1)) == ["got SIGTERM"]  # readable after exit

    run(tmp_path, fake_replica, scenario)


def test_killed_replica_is_exited_with_last_lines(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake()
        await h.wait_for(handle, ReplicaPhase.READY)
        os.kill(handle.pid, signal.SIGKILL)
        seen = await h.wait_for(handle, ReplicaPhase.EXITED)
        assert seen.exit_code == -signal.SIGKILL
        assert len(seen.last_lines) == EXIT_LINES
        assert seen.last_lines[-1] == "line 29"
        assert not running(handle.pid)  # reaped, not a zombie
        again = await h.runtime.observe(handle)  # the exit code is kept for repeated observations
        assert (again.phase, again.exit_code) == (ReplicaPhase.EXITED, -signal.SIGKILL)

    run(tmp_path, fake_replica, scenario)


def test_engine_that_cannot_load_reports_its_error(tmp_path: Path, fake_replica: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()

    async def scenario(h: Harness) -> None:
        command = [sys.executable, "-m", "modelport.cli.main", "serve", str(empty), "--port", "{port}"]
        handle = await h.start(command)
        seen = await h.wait_for(handle, ReplicaPhase.EXITED, timeout=60)
        assert seen.exit_code == 2
        assert any("has no config.json" in line for line in seen.last_lines), seen.last_lines

    run(tmp_path, fake_replica, scenario)


def test_command_that_cannot_run_raises(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(FileNotFoundError):
            await h.start([str(tmp_path / "no-such-program")])

    run(tmp_path, fake_replica, scenario)


def test_stop_is_graceful_and_idempotent(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake()
        await h.wait_for(handle, ReplicaPhase.READY)
        await h.runtime.stop(handle, grace_s=10)
        assert not running(handle.pid)
        seen = await h.runtime.observe(handle)
        assert (seen.phase, seen.exit_code) == (ReplicaPhase.EXITED, 0)  # exited by itself on SIGTERM
        assert seen.last_lines[-1] == "got SIGTERM"
        started = time.monotonic()
        await h.runtime.stop(handle, grace_s=10)
        await h.runtime.stop(handle, grace_s=10)
        assert time.monotonic() - started < 1

    run(tmp_path, fake_replica, scenario)


def test_stop_kills_a_replica_that_ignores_sigterm(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake("--ignore-term")
        await h.wait_for(handle, ReplicaPhase.READY)
        started = time.monotonic()
        await h.runtime.stop(handle, grace_s=1)
        assert time.monotonic() - started >= 1  # the grace period was given
        seen = await h.runtime.observe(handle)
        assert (seen.phase, seen.exit_code) == (ReplicaPhase.EXITED, -signal.SIGKILL)
        assert "got SIGTERM" in seen.last_lines

    run(tmp_path, fake_replica, scenario)


@pytest.mark.parametrize("on_term", ["term", "ignore"])
def test_stop_signals_the_process_group(tmp_path: Path, fake_replica: Path, on_term: str) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake("--grandchild", on_term)
        await h.wait_for(handle, ReplicaPhase.READY)
        grandchild = await grandchild_pid(h, handle)
        assert running(grandchild)
        await h.runtime.stop(handle, grace_s=5)  # the leader exits on SIGTERM
        # gone either way: the SIGKILL after the leader's exit gets one that ignores SIGTERM (whether a
        # grandchild that handles SIGTERM logs it before that SIGKILL is a race, so it is not asserted)
        await wait_gone(grandchild)

    run(tmp_path, fake_replica, scenario)


def test_a_crashed_replica_leaves_no_processes(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake("--grandchild", "ignore")
        await h.wait_for(handle, ReplicaPhase.READY)
        grandchild = await grandchild_pid(h, handle)
        os.kill(handle.pid, signal.SIGKILL)  # the grandchild is orphaned, still in the group
        await h.wait_for(handle, ReplicaPhase.EXITED)
        await wait_gone(grandchild)

    run(tmp_path, fake_replica, scenario)


def test_fresh_runtime_adopts_and_stops_a_replica(tmp_path: Path, fake_replica: Path) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake()
        await h.wait_for(handle, ReplicaPhase.READY)
        stored = ReplicaHandle.from_json(json.loads(json.dumps(handle.to_json())))
        adopter = LocalRuntime(tmp_path / "other")
        try:
            assert (await adopter.observe(stored)).phase == ReplicaPhase.READY
            assert (await adopter.logs(stored, tail=1)) == ["line 29"]
            await adopter.stop(stored, grace_s=5)
            assert not running(stored.pid)  # the first runtime's child: a zombie until it reaps it
            seen = await adopter.observe(stored)
            assert (seen.phase, seen.exit_code) == (ReplicaPhase.EXITED, None)  # not its child
            assert seen.last_lines[-1] == "got SIGTERM"
        finally:
            await adopter.close()

    run(tmp_path, fake_replica, scenario)


def test_replica_outlives_a_killed_control_plane(tmp_path: Path, fake_replica: Path) -> None:
    script = tmp_path / "control_plane.py"
    script.write_text(CONTROL_PLANE)
    command = [sys.executable, "-u", str(fake_replica), "--port", "{port}"]
    argv = [sys.executable, str(script), str(tmp_path / "logs"), uuid.uuid4().hex, json.dumps(command)]
    control = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        assert control.stdout is not None
        line = control.stdout.readline()
    finally:
        control.kill()
        control.wait()
    handle = ReplicaHandle.from_json(json.loads(line))

    async def scenario(h: Harness) -> None:
        h.track(handle)  # the restarted control plane: a fresh runtime with the stored handle
        await h.wait_for(handle, ReplicaPhase.READY)
        await h.runtime.stop(handle, grace_s=5)
        await wait_gone(handle.pid)
        assert (await h.runtime.observe(handle)).phase == ReplicaPhase.EXITED

    run(tmp_path, fake_replica, scenario)


@pytest.mark.parametrize("shared", [True, False], ids=["same-runtime", "fresh-runtime"])
def test_a_handle_for_a_reused_pid_is_exited_and_never_signalled(
    tmp_path: Path, fake_replica: Path, shared: bool
) -> None:
    async def scenario(h: Harness) -> None:
        handle = await h.start_fake()
        await h.wait_for(handle, ReplicaPhase.READY)
        # same pid, another start time: as if the replica died and its pid went to a new process
        stale = dataclasses.replace(handle, create_time=handle.create_time - 60)
        runtime = h.runtime if shared else LocalRuntime(tmp_path / "other")
        try:
            seen = await runtime.observe(stale)
            assert (seen.phase, seen.exit_code) == (ReplicaPhase.EXITED, None)
            await runtime.stop(stale, grace_s=1)
        finally:
            if not shared:
                await runtime.close()
        assert running(handle.pid)
        assert (await h.runtime.observe(handle)).phase == ReplicaPhase.READY
        assert "got SIGTERM" not in await h.runtime.logs(handle)

    run(tmp_path, fake_replica, scenario)


@pytest.mark.timeout(400)
def test_real_engine_serves_a_completion(tmp_path: Path, fake_replica: Path, tiny_model: Path) -> None:
    async def scenario(h: Harness) -> None:
        command = [sys.executable, "-m", "modelport.cli.main", "serve", str(tiny_model)]
        command += ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
        handle = await h.start(command)
        await h.wait_for(handle, ReplicaPhase.READY, timeout=300)
        # the replica answers only whoever has its token (the gateway)
        auth = {"authorization": f"Bearer {replica_token(handle.replica_id)}"}
        async with httpx.AsyncClient(base_url=h.runtime.address(handle), timeout=60) as client:
            body = {"model": tiny_model.name, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
            assert (await client.post("/v1/completions", json=body)).status_code == 401
            response = await client.post("/v1/completions", json=body, headers=auth)
        assert response.status_code == 200, response.text
        completion = response.json()
        assert isinstance(completion["choices"][0]["text"], str)
        assert completion["usage"]["completion_tokens"] >= 1
        await h.runtime.stop(handle, grace_s=30)
        seen = await h.runtime.observe(handle)
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: not our SIGKILL
        assert (seen.phase, seen.exit_code) == (ReplicaPhase.EXITED, -signal.SIGTERM), seen.last_lines

    run(tmp_path, fake_replica, scenario)


def test_discard_kills_a_replica_whose_handle_was_never_recorded(tmp_path: Path) -> None:
    async def scenario() -> None:
        starter = LocalRuntime(tmp_path / "logs")
        spec = LaunchSpec("lost-launch", [sys.executable, "-c", "import time; time.sleep(60)"], {})
        handle = await starter.start(spec)  # as if the control plane died before saving this handle
        fresh = LocalRuntime(tmp_path / "logs")
        assert await fresh.discard("lost-launch") == 1
        assert (await starter.observe(handle)).phase is ReplicaPhase.EXITED
        assert await fresh.discard("lost-launch") == 0
        await starter.close()
        await fresh.close()

    asyncio.run(scenario())


def test_a_replica_gets_its_token_and_its_endpoint_env_cannot_replace_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MODELPORT_REPLICA_TOKEN and the engine's own variable (token_vars) carry the replica's
    derived token; an endpoint's env naming them does not win."""
    monkeypatch.setenv("MODELPORT_DATA_DIR", str(tmp_path / "data"))
    show = "import os; print('token', os.environ['MODELPORT_REPLICA_TOKEN'], os.environ['ENGINE_KEY'])"

    async def scenario() -> None:
        runtime = LocalRuntime(tmp_path / "logs")
        forged = {"MODELPORT_REPLICA_TOKEN": "mine", "ENGINE_KEY": "mine"}
        spec = LaunchSpec("rep-1", [sys.executable, "-c", show], forged, token_vars=("ENGINE_KEY",))
        handle = await runtime.start(spec)
        deadline = time.monotonic() + 20
        while (await runtime.observe(handle)).phase is not ReplicaPhase.EXITED:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        token = replica_token("rep-1", tmp_path / "data" / "replica-secret")
        assert f"token {token} {token}" in await runtime.logs(handle)
        await runtime.close()

    asyncio.run(scenario())
