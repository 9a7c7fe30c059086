"""The preloaded Python on real processes: what a forked child sees, and LocalRuntime starting,
stopping and discarding builtin replicas forked from it (and falling back when it cannot)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from modelport.runtime.base import LaunchSpec, ReplicaHandle, ReplicaPhase
from modelport.runtime.local import LocalRuntime
from modelport.runtime.preload import Preloader
from modelport.runtime.replica_token import replica_token

pytestmark = pytest.mark.timeout(180)
TESTS_DIR = Path(__file__).resolve().parents[2] / "support"


def _wait(condition, timeout_s: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def probe_preloader(tmp_path: Path) -> Iterator[Preloader]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    preloader = Preloader(tmp_path / "logs" / "preload.log", env, entry="preload_probe")
    preloader.start()
    _wait(preloader.ready)
    yield preloader
    preloader.close()


def _probe(preloader: Preloader, tmp_path: Path, name: str, code: int, extra_env: dict[str, str]) -> int:
    argv = [sys.executable, "-m", "preload_probe", str(tmp_path / f"{name}.json"), str(code)]
    pid = preloader.spawn(argv, {**preloader.env, **extra_env}, tmp_path / f"{name}.log", name)
    assert pid is not None
    return pid


def test_a_forked_child_is_the_process_a_plain_spawn_would_make(
    probe_preloader: Preloader, tmp_path: Path
) -> None:
    sent = time.time()
    extra = {"MODELPORT_REPLICA_ID": "r-one", "HF_TOKEN": "hf_secret_for_this_replica"}
    pid = _probe(probe_preloader, tmp_path, "one", 0, extra)
    other = _probe(probe_preloader, tmp_path, "two", 3, {"MODELPORT_REPLICA_ID": "r-two"})
    _wait(lambda: probe_preloader.exit_code(pid) is not None and probe_preloader.exit_code(other) is not None)
    assert probe_preloader.exit_code(pid) == 0 and probe_preloader.exit_code(other) == 3

    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["env"] == {**probe_preloader.env, **extra}  # exactly the launch's environment
    assert one["argv"] == [str(tmp_path / "one.json"), "0"]
    assert one["pid"] == pid and one["sid"] == pid  # its own session: stop signals its group only
    assert one["ppid"] != os.getpid()  # forked by the preloaded Python, not started by us
    assert one["torch_imported"]  # what it skipped
    assert one["random"] != two["random"]  # re-seeded, not the parent's sequence
    assert one["clock_age_s"] < time.time() - sent + 0.05  # startup phases count from the fork
    log = tmp_path / "one.log"
    assert "probe wrote" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_closed_preloaded_python_exits_and_forks_no_more(
    probe_preloader: Preloader, tmp_path: Path
) -> None:
    server = probe_preloader._proc
    assert server is not None
    probe_preloader.close()
    assert server.poll() is not None
    assert probe_preloader.spawn([sys.executable, "-m", "preload_probe", "x", "0"], probe_preloader.env,
                                 tmp_path / "x.log", "x") is None  # fmt: skip


# -- LocalRuntime with the real builtin engine ------------------------------------------------
def _serve(replica_id: str, model: Path, env: dict[str, str] | None = None) -> LaunchSpec:
    argv = [
        sys.executable,
        "-m",
        "modelport.cli.main",
        "serve",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    return LaunchSpec(replica_id, argv, env or {})


async def _until_ready(runtime: LocalRuntime, handle: ReplicaHandle) -> None:
    deadline = time.monotonic() + 120
    while (await runtime.observe(handle)).phase != ReplicaPhase.READY:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def _preloaded(tmp_path: Path) -> LocalRuntime:
    runtime = LocalRuntime(tmp_path / "logs", preload=True)
    await runtime.prepare()
    assert runtime._preloader is not None
    await asyncio.to_thread(_wait, runtime._preloader.ready)
    return runtime


def test_builtin_replicas_are_forked_served_stopped_and_discarded(tiny_model: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _preloaded(tmp_path)
        try:
            handle = await runtime.start(_serve("r-forked", tiny_model))
            proc = psutil.Process(handle.pid)
            assert "modelport.runtime.preload_server" in psutil.Process(proc.ppid()).cmdline()
            await _until_ready(runtime, handle)
            assert proc.cmdline()[3:5] == ["serve", str(tiny_model)]  # ps shows the replica's command
            assert "MODELPORT_REPLICA_ID=r-forked" in proc.cmdline()
            # the forked child took the launch's token: it answers only with it, and ps never shows it
            token = replica_token("r-forked")
            assert not any(token in arg for arg in proc.cmdline())
            async with httpx.AsyncClient() as client:
                body = {"model": "tiny", "prompt": "hello", "max_tokens": 4}
                url = f"{runtime.address(handle)}/v1/completions"
                assert (await client.post(url, json=body, timeout=60)).status_code == 401
                auth = {"authorization": f"Bearer {token}"}
                answer = await client.post(url, json=body, headers=auth, timeout=60)
            assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 4
            await runtime.stop(handle, grace_s=20)
            stopped = await runtime.observe(handle)
            assert stopped.phase == ReplicaPhase.EXITED and stopped.exit_code is not None
            assert any("Finished server process" in line for line in stopped.last_lines)

            # a launch the control plane did not get to record is found by its id and killed
            lost = await runtime.start(_serve("r-lost", tiny_model))
            titled = "MODELPORT_REPLICA_ID=r-lost"  # set by the child a moment after the fork
            await asyncio.to_thread(_wait, lambda: titled in psutil.Process(lost.pid).cmdline())
            assert await runtime.discard("r-lost") == 1
            assert (await runtime.observe(lost)).phase == ReplicaPhase.EXITED

            # a forked replica outlives the runtime and its preloaded Python, and is re-adopted
            survivor = await runtime.start(_serve("r-survivor", tiny_model))
            await _until_ready(runtime, survivor)
        finally:
            await runtime.close()
        adopter = LocalRuntime(tmp_path / "logs")
        try:
            assert (await adopter.observe(survivor)).phase == ReplicaPhase.READY
            await adopter.stop(survivor, grace_s=20)
            assert (await adopter.observe(survivor)).phase == ReplicaPhase.EXITED
        finally:
            await adopter.close()

    asyncio.run(scenario())


def test_a_launch_that_cannot_be_forked_starts_as_a_new_python(tiny_model: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _preloaded(tmp_path)
        try:
            # a variable torch reads when it loads: only a new Python honours it
            handle = await runtime.start(_serve("r-own", tiny_model, {"OMP_NUM_THREADS": "1"}))
            assert psutil.Process(handle.pid).ppid() == os.getpid()
            await _until_ready(runtime, handle)
            await runtime.stop(handle, grace_s=20)

            # the preloaded Python dies: replicas still start, the plain way
            assert runtime._preloader is not None and runtime._preloader._proc is not None
            runtime._preloader._proc.kill()
            runtime._preloader._proc.wait()
            handle = await runtime.start(_serve("r-after", tiny_model))
            assert psutil.Process(handle.pid).ppid() == os.getpid()
            await _until_ready(runtime, handle)
            await runtime.stop(handle, grace_s=20)
        finally:
            await runtime.close()

    asyncio.run(scenario())
