"""text-generation-inference wire models (`/generate`, `/generate_stream`, `POST /`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelport.protocol.errors import bad_request


class GenerateParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    max_new_tokens: int | None = 100
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    do_sample: bool = False
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool | None = False
    truncate: int | None = None
    top_n_tokens: int | None = None
    watermark: bool = False
    grammar: dict[str, Any] | None = None
    best_of: int | None = None
    adapter_id: str | None = None

    def check_supported(self) -> None:
        if self.grammar is not None:
            raise bad_request(
                "grammar-constrained generation is not supported by this engine yet", param="grammar"
            )
        if self.watermark:
            raise bad_request("watermarking is not supported", param="watermark")
        if self.best_of not in (None, 1):
            raise bad_request("best_of > 1 is not supported", param="best_of")
        if self.typical_p not in (None, 1.0):
            raise bad_request("typical_p is not supported", param="typical_p")
        if self.temperature is not None and self.temperature <= 0:
            raise bad_request("`temperature` must be strictly positive", param="temperature")
        if self.top_n_tokens is not None and not 0 <= self.top_n_tokens <= 5:
            raise bad_request("`top_n_tokens` must be between 0 and 5", param="top_n_tokens")
        if self.adapter_id:
            raise bad_request("adapters are not supported", param="adapter_id")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    stream: bool = False

    def sampling(self) -> dict[str, Any]:
        p = self.parameters
        sampled = (
            p.do_sample
            or (p.temperature is not None and p.temperature != 1.0)
            or p.top_p is not None
            or p.top_k is not None
        )
        return {"temperature": (p.temperature or 1.0) if sampled else 0.0, "top_p": p.top_p, "top_k": p.top_k}
