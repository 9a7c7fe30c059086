"""The simplest baseline: Hugging Face ``generate`` in-process, one request at a time.

Greedy, with ``min_new_tokens == max_new_tokens`` so every output has the requested length, on
the same random-word prompts the load generator sends. A streamer timestamps the first new
token, so TTFT and TPOT mean the same as over HTTP (minus the HTTP). Its throughput does not
depend on concurrency: N waiting clients would be served one after another.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelport.bench.config import Endpoint, LoadConfig
from modelport.bench.prompts import make_prompts
from modelport.bench.result import BenchResult, RequestRecord


class _FirstTokenClock:
    """A ``generate`` streamer that notes when the first generated token arrives.

    ``generate`` calls ``put`` once with the prompt, then once per new token.
    """

    def __init__(self) -> None:
        self.puts = 0
        self.first_token_at: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


def load_model(model_dir: Path, dtype: str = "bfloat16") -> tuple[Any, Any]:
    """(model, tokenizer) on CPU in ``dtype``, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
    model.eval()
    return model, tokenizer


def _input_ids(tokenizer: Any, prompt: str, endpoint: Endpoint) -> Any:
    if endpoint is Endpoint.chat:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
    return tokenizer(prompt, return_tensors="pt")["input_ids"]


def generate_one(
    model: Any, tokenizer: Any, prompt: str, config: LoadConfig, index: int, t0: float
) -> RequestRecord:
    import torch

    start = time.perf_counter()
    ids = _input_ids(tokenizer, prompt, config.endpoint)
    clock = _FirstTokenClock()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=config.output_tokens,
            min_new_tokens=config.output_tokens,
            pad_token_id=tokenizer.pad_token_id,
            streamer=clock,
        )
    end = time.perf_counter()
    return RequestRecord(
        index=index,
        start_s=start - t0,
        end_s=end - t0,
        ttft_s=(clock.first_token_at - start) if clock.first_token_at is not None else None,
        output_tokens=int(out.shape[1] - ids.shape[1]),
        prompt_tokens=int(ids.shape[1]),
    )


def run_sequential(model_dir: Path, config: LoadConfig, dtype: str = "bfloat16") -> BenchResult:
    """Generate ``config.num_requests`` outputs one after another (after ``config.warmup`` untimed ones)."""
    model, tokenizer = load_model(model_dir, dtype)
    prompts = make_prompts(config.num_requests, config.prompt_tokens, config.seed)
    t0 = time.perf_counter()
    for i in range(config.warmup):
        generate_one(model, tokenizer, prompts[i % len(prompts)] + " warmup", config, -1, t0)
    t0 = time.perf_counter()
    records = [generate_one(model, tokenizer, p, config, i, t0) for i, p in enumerate(prompts)]
    return BenchResult(
        config=config,
        model=Path(model_dir).name,
        duration_s=records[-1].end_s - records[0].start_s,
        records=records,
        engine="sequential",
    )
