"""What one load run sends: :class:`LoadConfig`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Endpoint(StrEnum):
    """Which OpenAI route the load generator calls."""

    completions = "completions"
    chat = "chat"

    @property
    def path(self) -> str:
        return "/v1/completions" if self is Endpoint.completions else "/v1/chat/completions"


def api_root(url: str) -> str:
    """The server root of a base URL given with or without ``/v1`` (and trailing slashes)."""
    root = url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    if not root.startswith(("http://", "https://")):
        root = "http://" + root
    return root


@dataclass(frozen=True)
class LoadConfig:
    """One closed-loop load run: ``num_requests`` requests, at most ``concurrency`` in flight."""

    url: str
    model: str | None = None
    """Model id to send; None: the first id of GET /v1/models."""
    concurrency: int = 1
    num_requests: int = 8
    prompt_tokens: int = 128
    """Approximate prompt length (random words, about one token each)."""
    output_tokens: int = 128
    """max_tokens, sent with ignore_eos so every request generates exactly this many."""
    stream: bool = True
    endpoint: Endpoint = Endpoint.completions
    api_key: str | None = None
    warmup: int = 0
    """Requests sent (at the same concurrency) before the timed run; not recorded."""
    ignore_eos: bool = True
    seed: int = 0
    timeout_s: float = 600.0
    """Per-request timeout (connect, read and write)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Merged last into every request body (server-specific fields)."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.num_requests < 1:
            raise ValueError("num_requests must be >= 1")
        if self.prompt_tokens < 1:
            raise ValueError("prompt_tokens must be >= 1")
        if self.output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")

    @property
    def root(self) -> str:
        return api_root(self.url)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["endpoint"] = self.endpoint.value
        d.pop("api_key")
        return d
