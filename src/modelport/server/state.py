"""What the route handlers share: the served model and its engine."""

from __future__ import annotations

import enum
import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelport.protocol.errors import APIError

if TYPE_CHECKING:
    from modelport.engine.embedder import Embedder
    from modelport.engine.engine import LLMEngine


class ModelKind(enum.Enum):
    GENERATE = "generate"
    EMBED = "embed"


@dataclass
class ServerState:
    model_name: str
    model_path: str
    kind: ModelKind
    tokenizer: Any
    max_model_len: int
    llm: LLMEngine | None = None
    embedder: Embedder | None = None
    ready: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    max_body_bytes: int = 8 * 1024 * 1024
    any_model_name: bool = False  # behind an endpoint URL the URL names the model, as on TGI

    @functools.cached_property
    def special_ids(self) -> frozenset[int]:
        return frozenset(getattr(self.tokenizer, "all_special_ids", None) or ())

    def engine_failure(self) -> BaseException | None:
        """Why the generation loop or the embedding worker died; None while they run."""
        if self.llm is not None and self.llm.dead is not None:
            return self.llm.dead
        if self.embedder is not None and self.embedder.dead is not None:
            return self.embedder.dead
        return None

    def healthy(self) -> bool:
        if not self.ready:
            return False
        if self.llm is not None and self.llm.dead is not None:
            return False
        if self.embedder is not None:
            from modelport.engine.embedder import EmbedderUnavailable

            try:
                self.embedder.check_health()
            except EmbedderUnavailable:
                return False
        return True

    def require_llm(self) -> LLMEngine:
        if self.llm is None:
            raise APIError(
                400,
                f"{self.model_name} is an embedding model: it serves /embed and /v1/embeddings, "
                "not text generation",
                param="model",
                code="wrong_model_kind",
            )
        return self.llm

    def require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise APIError(
                400,
                f"{self.model_name} is a text-generation model: it does not serve embeddings",
                param="model",
                code="wrong_model_kind",
            )
        return self.embedder

    def check_model_name(self, requested: str | None) -> None:
        """One model per server: accept its name, its path, and the placeholders clients send."""
        if self.any_model_name or requested in (
            None,
            "",
            self.model_name,
            self.model_path,
            "dummy",
            "tgi",
            "default",
        ):
            return
        raise APIError(
            404,
            f"the model {requested!r} does not exist here; this server serves {self.model_name!r}",
            param="model",
            code="model_not_found",
        )
