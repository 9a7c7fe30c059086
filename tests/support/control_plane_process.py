"""Run the real `modelport up` as a user would: a child process on a free port with its own data dir."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from modelport.runtime.local import replica_identity
from tests.support.server_process import free_port


class ControlPlaneProcess:
    def __init__(
        self,
        data_dir: Path,
        database_url: str | None = None,
        *args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        allow_custom_commands: bool = False,
    ) -> None:
        """`allow_custom_commands`: start with --allow-custom-commands (off by default, as for users)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.args = (*args, "--allow-custom-commands") if allow_custom_commands else args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"up-{self.port}.log"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 120.0) -> ControlPlaneProcess:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODELPORT_DATA_DIR": str(self.data_dir), **self.env}
        if self.database_url:
            env["MODELPORT_DATABASE_URL"] = self.database_url
        cmd = [sys.executable, "-m", "modelport.cli.main", "up", "--port", str(self.port), *self.args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"modelport up exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"control plane not up after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, as a crash would: replicas keep running."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 90.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ControlPlaneProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        kill_replicas(self.data_dir)

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=self.headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def endpoint(self, name: str, namespace: str = "default") -> dict[str, object]:
        response = self.api("GET", f"/v2/endpoint/{namespace}/{name}")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def wait_for(
        self, name: str, state: str, timeout: float = 120.0, ready: int | None = None
    ) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < deadline:
            last = self.endpoint(name)
            status = last["status"]
            assert isinstance(status, dict)
            if status["state"] == state and (ready is None or status["readyReplica"] == ready):
                return last
            time.sleep(0.3)
        raise TimeoutError(f"{name} not {state} after {timeout} s: {last.get('status')}\n{self.log_tail()}")


def replica_processes(data_dir: Path) -> list[psutil.Process]:
    """Engine processes started by a control plane using this data dir (their logs live in it)."""
    found = []
    log_dir = str(data_dir / "replicas")
    for proc in psutil.process_iter(["cmdline", "open_files"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if "serve" not in cmdline or "modelport.cli.main" not in cmdline:
                continue
            files = proc.open_files()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(f.path.startswith(log_dir) for f in files):
            found.append(proc)
    return found


def engine_processes(data_dir: Path) -> list[psutil.Process]:
    """Every process of any engine's replicas (children too) of a control plane using this data dir:
    the control plane gives each replica MODELPORT_REPLICA_ID, and children inherit it (a replica
    forked from the preloaded Python shows it in its title)."""
    found = []
    for proc in psutil.process_iter():
        try:
            marks = replica_identity(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marks and marks.get("MODELPORT_DATA_DIR") == str(data_dir):
            found.append(proc)
    return found


def kill_replicas(data_dir: Path) -> None:
    for proc in [*replica_processes(data_dir), *engine_processes(data_dir)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def audit_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`modelport audit ...` against an installation's SQLite store, as an operator runs it."""
    env = {**os.environ, "MODELPORT_DATA_DIR": str(data_dir)}
    env.pop("MODELPORT_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "modelport.cli.main", "audit", *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
