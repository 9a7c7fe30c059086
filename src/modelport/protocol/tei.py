"""text-embeddings-inference wire models: `/embed`, `/similarity`, and HF task payloads at `POST /`.

Field names and defaults follow TEI's ``router/src/http/types.rs``; unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

# TEI's default --max-client-batch-size: more inputs in one request is a 413
MAX_CLIENT_BATCH_SIZE = 32

TextOrIds = StrictStr | list[StrictInt]
# A single text, one token-id list, or a batch mixing both (TEI's `Input`)
Inputs = TextOrIds | list[TextOrIds]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# TEI accepts "Left"/"Right" and their lowercase aliases
Direction = Annotated[Literal["left", "right"], BeforeValidator(_lower)]


def as_batch(inputs: Inputs) -> list[str | list[int]]:
    """A single text or token-id list becomes a batch of one; a batch stays as it is."""
    if isinstance(inputs, str):
        return [inputs]
    if inputs and isinstance(inputs[0], int):  # validation made the list all-int
        return [inputs]
    return cast(list[str | list[int]], inputs)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EmbedRequest(_Wire):
    inputs: Inputs
    normalize: bool = True
    truncate: bool | None = None
    truncation_direction: Direction = "right"
    prompt_name: str | None = None
    dimensions: int | None = None

    @classmethod
    def from_task_payload(cls, body: dict[str, Any]) -> EmbedRequest:
        """HF feature-extraction sends options at the root; older clients nest them in `parameters`."""
        params = body.get("parameters")
        merged = {**params, **body} if isinstance(params, dict) else body
        return cls.model_validate(merged)


class SimilarityInput(_Wire):
    source_sentence: StrictStr
    sentences: list[StrictStr]


class SimilarityParameters(_Wire):
    truncate: bool | None = None
    truncation_direction: Direction = "right"
    prompt_name: str | None = None


class SimilarityRequest(_Wire):
    inputs: SimilarityInput
    parameters: SimilarityParameters = Field(default_factory=SimilarityParameters)

    @classmethod
    def from_task_payload(cls, body: dict[str, Any]) -> SimilarityRequest:
        """`parameters` may be null or missing (huggingface_hub sends ``{}``)."""
        return cls.model_validate({**body, "parameters": body.get("parameters") or {}})


def is_similarity_payload(body: Any) -> bool:
    """HF sentence-similarity posts ``{"inputs": {"source_sentence", "sentences"}}`` to the root."""
    return isinstance(body, dict) and isinstance(body.get("inputs"), dict)


# Messages for a field whose value has the wrong shape, instead of pydantic's per-branch union errors
EMBED_HINTS = {
    "inputs": "`inputs` must be a string, a list of strings, or token ids (a list of integers, or of lists)",
    "normalize": "`normalize` must be true or false",
    "truncate": "`truncate` must be true or false",
    "truncation_direction": '`truncation_direction` must be "left" or "right"',
    "prompt_name": "`prompt_name` must be a string naming one of the model's prompts",
    "dimensions": "`dimensions` must be a positive integer",
}
SIMILARITY_HINTS = {
    "inputs": '`inputs` must be an object {"source_sentence": string, "sentences": [string, ...]}',
    "parameters": "`parameters` must be an object with optional truncate, truncation_direction, prompt_name",
}
