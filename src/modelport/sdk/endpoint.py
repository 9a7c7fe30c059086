"""What the SDK knows of an endpoint, parsed from the v2 object (shared by sync and async)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ReplicaInfo:
    id: str
    generation: int
    phase: str
    restarts: int
    last_error: str | None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class EndpointInfo:
    """Attributes of an endpoint; `raw` is the API's object. Refreshed in place by fetch()."""

    namespace: str
    raw: dict[str, Any]

    def _load(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        status = raw["status"]
        self.name: str = raw["name"]
        self.state: str = status["state"]
        self.url: str | None = status.get("url")
        self.message: str = status.get("message", "")
        self.ready_replicas: int = status.get("readyReplica", 0)
        self.target_replicas: int = status.get("targetReplica", 0)
        self.repository: str = raw["model"]["repository"]
        self.revision: str | None = raw["model"].get("revision")
        self.created_at = _time(status.get("createdAt"))
        self.updated_at = _time(status.get("updatedAt"))
        self.replicas = [
            ReplicaInfo(r["id"], r["generation"], r["phase"], r["restarts"], r.get("lastError"))
            for r in status.get("replicas", [])
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, state={self.state!r}, url={self.url!r})"
