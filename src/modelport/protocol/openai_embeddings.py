"""OpenAI `/v1/embeddings` wire models and response encoding."""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from modelport.protocol.tei import Inputs

# OpenAI's own per-request limit on the number of inputs
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `user` and vendor extras are accepted and ignored

    input: Inputs
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


HINTS = {
    "input": "`input` must be a string, a list of strings, or token ids (a list of integers, or of lists)",
    "encoding_format": '`encoding_format` must be "float" or "base64"',
    "dimensions": "`dimensions` must be a positive integer",
    "model": "`model` must be a string",
}


def encode_vector(vector: NDArray[np.float32], encoding_format: str) -> list[float] | str:
    """base64 is the raw little-endian float32 bytes, which the OpenAI SDK decodes with numpy."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def embeddings_response(
    vectors: NDArray[np.float32], encoding_format: str, model: str, prompt_tokens: int
) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
