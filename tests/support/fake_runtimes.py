"""In-process runtimes for control-plane tests: nothing is launched. `IdleRuntime` is the base
(replicas start and never become ready); the others change only what their tests look at."""

from __future__ import annotations

import time

from modelport.runtime.base import LaunchSpec, ReplicaHandle, ReplicaObservation, ReplicaPhase


class IdleRuntime:
    """Replicas that start and never get ready (nothing runs)."""

    name = "idle"
    port = 9

    async def prepare(self) -> None:
        return None

    async def start(self, spec: LaunchSpec) -> ReplicaHandle:
        return ReplicaHandle(spec.replica_id, self.name, 1, time.time(), self.port, "", "/health")

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation:
        return ReplicaObservation(handle, ReplicaPhase.STARTING, None, [])

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None:
        return None

    async def discard(self, replica_id: str) -> int:
        return 0

    def address(self, handle: ReplicaHandle) -> str:
        return f"http://127.0.0.1:{handle.port}"

    async def logs(self, handle: ReplicaHandle, tail: int = 200) -> list[str]:
        return []

    async def close(self) -> None:
        return None


class OneServerRuntime(IdleRuntime):
    """Every replica is the one HTTP server at `port`; it is ready as soon as it is started."""

    name = "fake"

    def __init__(self, port: int) -> None:
        self.port = port
        self.stopped: list[str] = []

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation:
        return ReplicaObservation(handle, ReplicaPhase.READY, None, [])

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None:
        self.stopped.append(handle.replica_id)

    async def logs(self, handle: ReplicaHandle, tail: int = 200) -> list[str]:
        return ["a log line"]


class ScriptedRuntime(IdleRuntime):
    """Answers each observe with the phase set for the replica; records the stops asked for."""

    name = "scripted"

    def __init__(self) -> None:
        self.phases: dict[str, ReplicaPhase] = {}
        self.exit_code: int | None = None
        self.last_lines: list[str] = []
        self.stops: list[tuple[str, float]] = []

    async def start(self, spec: LaunchSpec) -> ReplicaHandle:
        return handle_of(spec.replica_id)

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation:
        phase = self.phases[handle.replica_id]
        lines = self.last_lines if phase == ReplicaPhase.EXITED else []
        return ReplicaObservation(handle, phase, self.exit_code, lines)

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None:
        self.stops.append((handle.replica_id, grace_s))


def handle_of(replica_id: str) -> ReplicaHandle:
    return ReplicaHandle(replica_id, "scripted", 1, 0.0, 9000, "", "/health")
