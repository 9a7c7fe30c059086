"""Start a peer server as a subprocess, wait until it answers, stop it and everything it spawned.

The server runs in its own session (process group), so stopping it signals the whole group:
SIGTERM first, SIGKILL after a grace period, and a final sweep over the descendants recorded
with psutil (in case one of them moved to another group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx
import psutil


class ServerStartError(RuntimeError):
    """The server exited or did not become healthy in time; the message ends with its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, limit: int = 3000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace")


class ManagedServer:
    """A server subprocess with its output in ``log_path``. Use as a context manager."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        health_url: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 600.0,
        stop_grace_s: float = 20.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.health_url = health_url
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else dict(os.environ)
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            log.write(("$ " + " ".join(self.argv) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> float:
        """Poll ``health_url`` until it answers 200; return the seconds it took since start."""
        if self.proc is None:
            raise RuntimeError("start() first")
        t0 = time.monotonic()
        deadline = t0 + self.ready_timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                tail = log_tail(self.log_path)
                raise ServerStartError(
                    f"{self.name} exited with {code} before it was ready; log tail:\n{tail}"
                )
            try:
                if httpx.get(self.health_url, timeout=5.0).status_code == 200:
                    self.startup_s = time.monotonic() - t0
                    return self.startup_s
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        tail = log_tail(self.log_path)
        raise ServerStartError(
            f"{self.name} not healthy after {self.ready_timeout_s:.0f} s; log tail:\n{tail}"
        )

    def _descendants(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            return []

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL what is left. Safe to call twice."""
        if self.proc is None:
            return
        descendants = self._descendants()
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=self.stop_grace_s)
        _, alive = psutil.wait_procs(descendants, timeout=max(1.0, self.stop_grace_s / 4))
        self._signal_group(signal.SIGKILL)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        psutil.wait_procs(alive, timeout=5.0)

    def running_pids(self) -> list[int]:
        """PIDs of the server and its descendants that are still alive (for leak checks)."""
        if self.proc is None:
            return []
        pids = [self.proc.pid] if self.proc.poll() is None else []
        return pids + [p.pid for p in self._descendants() if p.is_running()]

    def __enter__(self) -> ManagedServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
