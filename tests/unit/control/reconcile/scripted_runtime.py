"""A runtime whose observations a test scripts; it records the stops the loop's parts ask for."""

from __future__ import annotations

from modelport.runtime.base import LaunchSpec, ReplicaHandle, ReplicaObservation, ReplicaPhase


class ScriptedRuntime:
    """Answers each observe with the phase set for the replica; records the stops asked for."""

    name = "scripted"

    def __init__(self) -> None:
        self.phases: dict[str, ReplicaPhase] = {}
        self.exit_code: int | None = None
        self.last_lines: list[str] = []
        self.stops: list[tuple[str, float]] = []

    async def prepare(self) -> None:
        return None

    async def start(self, spec: LaunchSpec) -> ReplicaHandle:
        return handle_of(spec.replica_id)

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation:
        phase = self.phases[handle.replica_id]
        lines = self.last_lines if phase == ReplicaPhase.EXITED else []
        return ReplicaObservation(handle, phase, self.exit_code, lines)

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None:
        self.stops.append((handle.replica_id, grace_s))

    async def discard(self, replica_id: str) -> int:
        return 0

    def address(self, handle: ReplicaHandle) -> str:
        return f"http://127.0.0.1:{handle.port}"

    async def logs(self, handle: ReplicaHandle, tail: int = 200) -> list[str]:
        return []

    async def close(self) -> None:
        return None


def handle_of(replica_id: str) -> ReplicaHandle:
    return ReplicaHandle(replica_id, "scripted", 1, 0.0, 9000, "", "/health")
