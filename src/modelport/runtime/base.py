"""Where replicas run: the interface the control loop drives, as pure data plus a Protocol.

A runtime starts a replica from a `LaunchSpec`, hands back a JSON-serialisable
`ReplicaHandle` (the control plane persists it to re-adopt the replica after a restart),
observes it (process alive? health route 200?), stops it and reads its log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol


@dataclass(frozen=True)
class LaunchSpec:
    replica_id: str
    command: list[str]  # argv; "{port}" in any element becomes the port the runtime picked
    env: dict[str, str]  # on top of the control plane's environment
    health_path: str = "/health"
    # variables that receive the replica's token besides MODELPORT_REPLICA_TOKEN (the engine's
    # own, e.g. VLLM_API_KEY); the runtime sets them after the endpoint's env, which cannot override
    token_vars: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplicaHandle:
    replica_id: str
    runtime: str
    pid: int
    create_time: float  # the process's start time: guards against a reused pid
    port: int
    log_path: str
    health_path: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReplicaHandle:
        return cls(
            replica_id=str(data["replica_id"]),
            runtime=str(data["runtime"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            port=int(data["port"]),
            log_path=str(data["log_path"]),
            health_path=str(data.get("health_path", "/health")),
        )


class ReplicaPhase(StrEnum):
    STARTING = "starting"  # process alive, health route not 200 yet
    READY = "ready"  # health route answers 200
    EXITED = "exited"  # process gone


@dataclass(frozen=True)
class ReplicaObservation:
    handle: ReplicaHandle
    phase: ReplicaPhase
    exit_code: int | None  # known only for the runtime's own children
    last_lines: list[str]  # tail of the log when EXITED, else []


class Runtime(Protocol):
    name: str

    async def prepare(self) -> None:
        """Get ready to start replicas fast (work that may go on in the background)."""
        ...

    async def start(self, spec: LaunchSpec) -> ReplicaHandle: ...

    async def observe(self, handle: ReplicaHandle) -> ReplicaObservation: ...

    async def stop(self, handle: ReplicaHandle, grace_s: float = 30.0) -> None: ...

    async def discard(self, replica_id: str) -> int:
        """Kill whatever runs under this replica id without a handle (a launch the control plane
        did not get to record before it died); return how many processes were found."""
        ...

    def address(self, handle: ReplicaHandle) -> str: ...

    async def logs(self, handle: ReplicaHandle, tail: int = 200) -> list[str]: ...

    async def close(self) -> None: ...
