"""OpenAI chat and completions wire models, and their conversion to engine sampling params."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelport.protocol.errors import APIError, bad_request

# What a request may hold, so one request cannot keep a replica busy for long before the engine
# sees it (the body limit bounds bytes, these bound the work per byte).
MAX_CHAT_MESSAGES = 4096
MAX_COMPLETION_PROMPTS = 64  # prompts in one /v1/completions list (each runs as its own request)
MAX_N = 8  # the engine's own cap on `n`, checked here too so the error names the field early

# Variables a chat template may read from `chat_template_kwargs`. Anything else is refused:
# apply_chat_template takes `chat_template` (a caller's own Jinja, which can loop for hours on
# the event loop), `tools`, `documents`, `tokenize` … through the same keyword arguments.
CHAT_TEMPLATE_KWARGS = frozenset({"enable_thinking", "thinking", "reasoning_effort"})
MAX_TEMPLATE_KWARG_CHARS = 256


class _Wire(BaseModel):
    # Unknown fields are ignored (clients send extras such as `user`), never an error.
    # No float field takes NaN or infinity: they pass every range check written as a comparison.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class StreamOptions(_Wire):
    include_usage: bool = False


class ChatMessage(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts: list[str] = []
        for part in self.content:
            if part.get("type") != "text":
                raise bad_request(
                    f"content parts of type {part.get('type')!r} are not supported; send text",
                    param="messages",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class _SamplingFields(_Wire):
    model: str | None = None
    temperature: float | None = Field(default=None)
    top_p: float | None = None
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | list[Any] | None = None
    user: str | None = None
    # engine extras, as vLLM accepts them
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    stop_token_ids: list[int] | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def bias_map(self) -> dict[int, float]:
        if not self.logit_bias or isinstance(self.logit_bias, list):
            return {}
        try:
            return {int(k): float(v) for k, v in self.logit_bias.items()}
        except ValueError as exc:
            raise bad_request("logit_bias keys must be token ids", param="logit_bias") from exc

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def check_n(n: int) -> None:
    if not 1 <= n <= MAX_N:
        raise bad_request(f"n must be between 1 and {MAX_N}, got {n}", param="n")


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    add_generation_prompt: bool = True
    chat_template_kwargs: dict[str, Any] | None = None

    def template_kwargs(self) -> dict[str, bool | int | float | str]:
        """The caller's template variables: only known names, only short scalar values."""
        out: dict[str, bool | int | float | str] = {}
        for key, value in (self.chat_template_kwargs or {}).items():
            param = f"chat_template_kwargs.{key}"
            if key not in CHAT_TEMPLATE_KWARGS:
                raise bad_request(
                    f"chat_template_kwargs may only set {', '.join(sorted(CHAT_TEMPLATE_KWARGS))}; "
                    f"{key[:64]!r} is not accepted",
                    param=param[:96],
                    code="unsupported",
                )
            if not isinstance(value, bool | int | float | str) or (
                isinstance(value, str) and len(value) > MAX_TEMPLATE_KWARG_CHARS
            ):
                raise bad_request(
                    f"chat_template_kwargs.{key} must be a boolean, a number or a string of at most "
                    f"{MAX_TEMPLATE_KWARG_CHARS} characters",
                    param=param,
                )
            out[key] = value
        return out

    def check_supported(self) -> None:
        if not self.messages:
            raise bad_request("messages must not be empty", param="messages")
        if len(self.messages) > MAX_CHAT_MESSAGES:
            raise bad_request(
                f"messages holds {len(self.messages)} items, more than the limit of {MAX_CHAT_MESSAGES}",
                param="messages",
            )
        check_n(self.n)
        self.template_kwargs()
        fmt = (self.response_format or {}).get("type", "text")
        if fmt != "text":
            raise bad_request(
                f"response_format {fmt!r} is not supported by this engine yet; use 'text'",
                param="response_format",
                code="unsupported",
            )
        if self.tools and self.tool_choice != "none":
            raise bad_request(
                "tool calling is not supported by this engine yet", param="tools", code="unsupported"
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise bad_request("top_logprobs needs logprobs: true", param="top_logprobs")


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None

    def check_supported(self) -> None:
        if self.suffix:
            raise bad_request(
                "suffix (fill-in-the-middle) is not supported", param="suffix", code="unsupported"
            )
        if self.best_of is not None and self.best_of != self.n:
            raise bad_request("best_of must equal n (best_of > n is not supported)", param="best_of")
        if self.logprobs is not None and not 0 <= self.logprobs <= 5:
            raise bad_request(f"logprobs must be between 0 and 5, got {self.logprobs}", param="logprobs")
        check_n(self.n)

    def prompts(self) -> list[str | list[int]]:
        """Normalise the four prompt shapes into a list of text or token-id prompts."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if not p:
            raise bad_request("prompt must not be empty", param="prompt")
        items: list[Any] = list(p)
        if isinstance(items[0], str | list) and len(items) > MAX_COMPLETION_PROMPTS:
            raise bad_request(
                f"prompt holds {len(items)} prompts, more than the limit of {MAX_COMPLETION_PROMPTS}; "
                "split them into several requests",
                param="prompt",
            )
        if all(isinstance(x, int) for x in items):
            return [[int(x) for x in items]]
        if all(isinstance(x, str) for x in items):
            return [str(x) for x in items]
        if all(isinstance(x, list) for x in items):
            return [[int(t) for t in x] for x in items]
        raise bad_request("prompt must be a string, a list of strings, or token ids", param="prompt")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def validation_error(exc: Exception) -> APIError:
    return bad_request(str(exc))
