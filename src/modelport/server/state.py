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
    from modelport.pipelines.service import TaskService


class ModelKind(enum.Enum):
    GENERATE = "generate"
    EMBED = "embed"
    TASK = "task"  # any other Hub task (pipelines/): classification, vision, audio, diffusion ...


@dataclass
class ServerState:
    model_name: str
    model_path: str
    kind: ModelKind
    tokenizer: Any
    max_model_len: int
    llm: LLMEngine | None = None
    embedder: Embedder | None = None
    tasks: TaskService | None = None
    task: str = "text-generation"  # the Hub task this replica serves
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
        if self.tasks is not None and self.tasks.dead is not None:
            return self.tasks.dead
        return None

    def healthy(self) -> bool:
        if not self.ready:
            return False
        if self.llm is not None and self.llm.dead is not None:
            return False
        if self.tasks is not None and not self.tasks.healthy():
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
                "not text generation"
                if self.embedder is not None
                else f"{self.model_name} serves {self.task}, not text generation: send its task "
                "payload to POST /",
                param="model",
                code="wrong_model_kind",
            )
        return self.llm

    def require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise APIError(
                400,
                f"{self.model_name} serves {self.task}: it does not serve embeddings",
                param="model",
                code="wrong_model_kind",
            )
        return self.embedder

    def require_tasks(self, *tasks: str) -> TaskService:
        """The task service, when it serves one of `tasks` (any task when none is named)."""
        if self.tasks is None or (tasks and self.tasks.task not in tasks):
            raise APIError(
                400,
                f"{self.model_name} serves {self.task}; this route is for "
                f"{' or '.join(tasks) or 'task models'}",
                param="model",
                code="wrong_model_kind",
            )
        return self.tasks

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
