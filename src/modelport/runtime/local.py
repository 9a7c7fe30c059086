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
from collections import OrderedDict
from collections.abc import Callable, Container
from pathlib import Path

import httpx
import psutil

from modelport import envs
from modelport.runtime.base import LaunchSpec, ReplicaHandle, ReplicaObservation, ReplicaPhase
from modelport.runtime.preload import Preloader
from modelport.runtime.replica_token import replica_token

EXIT_LINES = 20  # log lines an EXITED observation carries
PROBE_TIMEOUT_S = 2.0
KILL_WAIT_S = 5.0  # after SIGKILL, how long stop waits to see the leader gone
_POLL_S = 0.1
# psutil derives create_time from boot time + start ticks (1/100 s), so one process always reads
# the same value; the tolerance only absorbs float noise, far below any pid-reuse interval
_CREATE_TIME_TOLERANCE_S = 0.01
_KEPT_EXIT_CODES = 1024  # exit codes of reaped children, for observations repeated after the exit


def free_port(taken: Container[int] = ()) -> int:
    """A loopback port free right now and not in `taken` (the child binds it a moment later; a
    race with other programs that we accept)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


class PortsGiven:
    """Ports handed to replicas lately. The kernel may hand out a port again as soon as it is free,
    and a replica binds its port only seconds after it was chosen (imports, weights), so two
    launches close together could both get one port: the second replica then fails to bind while
    the first answers its health probes (and, once ready, its traffic)."""

    def __init__(self, hold_s: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s  # the longest a replica takes to start (LoopSettings.start_timeout_s)
        self.clock = clock
        self._given: OrderedDict[int, float] = OrderedDict()

    def __contains__(self, port: object) -> bool:
        given = self._given.get(port) if isinstance(port, int) else None
        return given is not None and self.clock() - given < self.hold_s

    def take(self) -> int:
        now = self.clock()
        while self._given and now - next(iter(self._given.values())) >= self.hold_s:
            self._given.popitem(last=False)
        port = free_port(self)
        self._given[port] = now
        self._given.move_to_end(port)
        return port


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a file, reading only its end."""
    if count <= 0:
        return []
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - max(65536, count * 400))
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return []
    if start > 0:  # the window began mid-line
        data = data.partition(b"\n")[2]
    return data.decode(errors="replace").splitlines()[-count:]


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) < _CREATE_TIME_TOLERANCE_S


def _holder(handle: ReplicaHandle) -> psutil.Process | None:
    """The process that holds the handle's pid now (any process, zombie included), or None."""
    try:
        return psutil.Process(handle.pid)
    except psutil.Error:
        return None


def _is_replica(proc: psutil.Process, handle: ReplicaHandle) -> bool:
    try:
        return _same_time(proc.create_time(), handle.create_time)
    except psutil.Error:
        return False


def _running(handle: ReplicaHandle) -> bool:
    """Whether the replica's leader runs, for a process this runtime did not start (psutil only)."""
    proc = _holder(handle)
    if proc is None or not _is_replica(proc, handle):
        return False
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_replica_group(handle: ReplicaHandle, sig: signal.Signals) -> None:
    """Signal the replica's process group, unless the pid now belongs to another process.

    The group id is the leader's pid (it is a session leader). POSIX keeps that number from
    being reused while the group has members, so if another process holds the pid the
    replica's group is empty and must not be signalled; if nobody holds it, a group with that
    id is what is left of the replica (e.g. engine workers outliving a crashed leader).
    """
    proc = _holder(handle)
    if proc is not None and not _is_replica(proc, handle):
        return
    _signal_group(handle.pid, sig)


def replica_identity(proc: psutil.Process) -> dict[str, str]:
    """MODELPORT_REPLICA_ID and MODELPORT_DATA_DIR of a process (empty if it is no replica):
    from its environment, or from the title of one forked from the preloaded Python, whose
    /proc environ cannot show them. Raises psutil.Error for a process that cannot be read."""
    names = [var.name for var in envs.IDENTITY_VARS]
    env = proc.environ()
    if env.get(envs.REPLICA_ID.name):
        return {name: env[name] for name in names if name in env}
    found = {}
    for arg in proc.cmdline():
        name, sep, value = arg.partition("=")
        if sep and name in names:
            found[name] = value
    return found if envs.REPLICA_ID.name in found else {}


def _started_for(proc: psutil.Process, replica_id: str) -> bool:
    return replica_identity(proc).get(envs.REPLICA_ID.name) == replica_id


def _kill_by_replica_id(replica_id: str) -> int:
    """SIGKILL the process groups led by processes started for this replica id, and wait (up to
    5 s) until the leaders are gone, so a replica started next under this id finds them dead."""
    killed: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) != proc.pid or not _started_for(proc, replica_id):
                continue
        except (psutil.Error, ProcessLookupError):
            continue
        _signal_group(proc.pid, signal.SIGKILL)
        killed.append(proc)
    _wait_dead(killed, timeout_s=5.0)
    return len(killed)


def _wait_dead(procs: list[psutil.Process], timeout_s: float) -> None:
    """Until each process has exited (gone, or a zombie: not reaped here, its parent does that)."""
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        while time.monotonic() < deadline:
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)


class LocalRuntime:
    name = "local"

    def __init__(self, log_dir: Path | None = None, preload: bool = False) -> None:
        """`preload`: fork builtin replicas from a pre-imported Python (see runtime/preload.py)."""
        self.log_dir = log_dir or envs.data_dir() / "replicas"
        # our own children, by pid, with their create_time: polled so they never stay zombies
        self._children: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self._exit_codes: OrderedDict[int, tuple[float, int]] = OrderedDict()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(PROBE_TIMEOUT_S))
        self._preloader = (
            Preloader(self.log_dir / "preload.log", envs.process_environment()) if preload else None
        )
        # replicas the preloader forked: pid -> create_time, for their exit codes
        self._forked: OrderedDict[int, float] = OrderedDict()
        self._ports = PortsGiven()

    async def prepare(self) -> None:
        # on this thread, not a worker's: the preloaded Python dies with the thread that started it
        if self._preloader is not None:
            self._preloader.start()

    async def start(self, spec: LaunchSpec) -> ReplicaHandle:
        port = self._ports.take()
        argv = [arg.replace("{port}", str(port)) for arg in spec.command]
        log_path = self.log_dir / f"{spec.replica_id}.log"
        base = envs.process_environment()
        env = {**base, **spec.env, **envs.TELEMETRY_OFF, envs.REPLICA_ID.name: spec.replica_id}
        token = await asyncio.to_thread(replica_token, spec.replica_id)
        env |= dict.fromkeys((envs.REPLICA_TOKEN.name, *spec.token_vars), token)
        pid = None
        if self._preloader is not None:
            await asyncio.to_thread(self.log_dir.mkdir, parents=True, exist_ok=True, mode=0o700)
            pid = await asyncio.to_thread(self._preloader.spawn, argv, env, log_path, spec.replica_id)
        if pid is None:
            pid = await self._spawn(argv, env, log_path)
        try:  # unreaped, the child is at worst a zombie here, which still has its create_time
            create_time = psutil.Process(pid).create_time()
        except psutil.Error:
            _signal_group(pid, signal.SIGKILL)  # a replica without a handle would leak
            if pid in self._children:
                self._children.pop(pid)[0].wait()
            raise
        if pid in self._children:
            self._children[pid] = (self._children[pid][0], create_time)
        else:
            self._forked[pid] = create_time
            while len(self._forked) > _KEPT_EXIT_CODES:
                self._forked.popitem(last=False)
        return ReplicaHandle(
            replica_id=spec.replica_id,
            runtime=self.name,
            pid=pid,
            create_time=create_time,
            port=port,
            log_path=str(log_path),
            health_path=spec.health_path,
        )

    async def _spawn(self, argv: list[str], env: dict[str, str], log_path: Path) -> int:
        fd = await asyncio.to_thread(self._open_log, log_path)
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the control plane; stop signals the whole group
            )
        finally:
            os.close(fd)
        self._children[proc.pid] = (proc, 0.0)  # create_time filled in by start
        return proc.pid

    async def discard(self, replica_id: str) -> int:
        return await asyncio.to_thread(_kill_by_replica_id, replica_id)

    def _open_log(self, path: Path) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # appended to: a restarted replica keeps its id, so earlier runs stay readable
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _alive(self, handle: ReplicaHandle) -> bool:
        """Whether the replica's leader runs; reaps it (and keeps its exit code) if it is our child."""
        entry = self._children.get(handle.pid)
        if entry is None or not _same_time(entry[1], handle.create_time):
            return _running(handle)
        proc, create_time = entry
        code = proc.poll()
        if code is None:
            return True
        del self._children[handle.pid]
        self._exit_codes[handle.pid] = (create_time, code)
        while len(self._exit_codes) > _KEPT_EXIT_CODES:
            self._exit_codes.popitem(last=False)
        return False

    async def _exit_code(self, handle: ReplicaHandle) -> int | None:
        """The exit code of a replica we started (negative: killed by that signal); None if not ours."""
        known = self._exit_codes.get(handle.pid)
        if known is not None and _same_time(known[0], handle.create_time):
            return known[1]
        forked = self._forked.get(handle.pid)
        if self._preloader is None or forked is None or not _same_time(forked, handle.create_time):
            return None
        return await asyncio.to_thread(self._preloader.exit_code, handle.pid)

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation:
        if not self._alive(handle):
            # an exited replica leaves nothing behind: its workers would hold the port or GPU memory
            _signal_replica_group(handle, signal.SIGKILL)
            lines = await asyncio.to_thread(tail_lines, Path(handle.log_path), EXIT_LINES)
            return ReplicaObservation(handle, ReplicaPhase.EXITED, await self._exit_code(handle), lines)
        try:
            response = await self._http.get(f"{self.address(handle)}{handle.health_path}")
            phase = ReplicaPhase.READY if response.status_code == 200 else ReplicaPhase.STARTING
        except httpx.HTTPError:
            phase = ReplicaPhase.STARTING
        return ReplicaObservation(handle, phase, None, [])

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None:
        if self._alive(handle):
            _signal_group(handle.pid, signal.SIGTERM)
            await self._wait_exit(handle, grace_s)
        # the leader ignored SIGTERM, or the group still holds the replica's own children
        _signal_replica_group(handle, signal.SIGKILL)
        await self._wait_exit(handle, KILL_WAIT_S)

    async def _wait_exit(self, handle: ReplicaHandle, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._alive(handle) and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)

    def address(self, handle: ReplicaHandle) -> str:
        return f"http://127.0.0.1:{handle.port}"

    async def logs(self, handle: ReplicaHandle, tail: int = 200) -> list[str]:
        return await asyncio.to_thread(tail_lines, Path(handle.log_path), tail)

    async def close(self) -> None:
        """Releases the probe client and the preloaded Python; replicas keep running (a restarted
        control plane re-adopts them)."""
        await self._http.aclose()
        if self._preloader is not None:
            await asyncio.to_thread(self._preloader.close)
