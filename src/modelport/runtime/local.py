"""Replicas as local child processes: the only code in modelport that starts or signals them.

Each replica runs in its own session (process group), so a SIGKILL of the control plane does
not take it down and a restarted control plane re-adopts it from the persisted handle; the
pid is trusted only together with the process start time, so a reused pid is never signalled.
Output goes to one log file per replica (owner-only), which `logs` and failure reports read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from modelport import envs
from modelport.runtime.base import LaunchSpec, ReplicaHandle, ReplicaObservation, ReplicaPhase

EXIT_LINES = 20
_CREATE_TIME_TOLERANCE_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a file, reading only its end."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max(65536, count * 400)))
            data = f.read()
    except FileNotFoundError:
        return []
    return data.decode(errors="replace").splitlines()[-count:]


class LocalRuntime:
    name = "local"

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir or envs.data_dir() / "replicas"
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(2.0))

    async def start(self, spec: LaunchSpec) -> ReplicaHandle:
        port = free_port()
        argv = [arg.replace("{port}", str(port)) for arg in spec.command]
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_path = self.log_dir / f"{spec.replica_id}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(
                argv,
                env={**envs.process_environment(), **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(fd)
        self._children[proc.pid] = proc
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:  # gone already: observe reports it as exited
            create_time = time.time()
        return ReplicaHandle(
            replica_id=spec.replica_id,
            runtime=self.name,
            pid=proc.pid,
            create_time=create_time,
            port=port,
            log_path=str(log_path),
            health_path=spec.health_path,
        )

    def _status(self, handle: ReplicaHandle) -> tuple[bool, int | None]:
        """(alive, exit code if known) — our own child is reaped, an adopted one checked by psutil."""
        child = self._children.get(handle.pid)
        if child is not None:
            code = child.poll()
            return code is None, code
        try:
            proc = psutil.Process(handle.pid)
            same = abs(proc.create_time() - handle.create_time) < _CREATE_TIME_TOLERANCE_S
            return same and proc.status() != psutil.STATUS_ZOMBIE, None
        except psutil.NoSuchProcess:
            return False, None

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation:
        alive, code = self._status(handle)
        if not alive:
            lines = await asyncio.to_thread(tail_lines, Path(handle.log_path), EXIT_LINES)
            return ReplicaObservation(handle, ReplicaPhase.EXITED, code, lines)
        try:
            response = await self._http.get(f"{self.address(handle)}{handle.health_path}")
            phase = ReplicaPhase.READY if response.status_code == 200 else ReplicaPhase.STARTING
        except httpx.HTTPError:
            phase = ReplicaPhase.STARTING
        return ReplicaObservation(handle, phase, None, [])

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None:
        alive, _ = self._status(handle)
        if alive:
            self._signal_group(handle.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while self._status(handle)[0] and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            # the group may still hold the replica's own children, or the leader ignored SIGTERM
            self._signal_group(handle.pid, signal.SIGKILL)
        child = self._children.pop(handle.pid, None)
        if child is not None:
            await asyncio.to_thread(child.wait)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def address(self, handle: ReplicaHandle) -> str:
        return f"http://127.0.0.1:{handle.port}"

    async def logs(self, handle: ReplicaHandle, tail: int = 200) -> list[str]:
        return await asyncio.to_thread(tail_lines, Path(handle.log_path), tail)

    async def close(self) -> None:
        await self._http.aclose()
