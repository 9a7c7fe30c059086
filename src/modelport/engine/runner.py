"""One forward pass over a scheduled step: pack, run the transformers model, sample."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modelport.engine.attention import build_paged_batch
from modelport.engine.kv_cache import KVCachePool
from modelport.engine.loader import LoadedModel
from modelport.engine.sampling import SampleResult, SampleRow, sample
from modelport.engine.scheduler import ScheduledStep
from modelport.engine.sequence import Sequence


@dataclass
class StepResult:
    sampled: list[Sequence]  # sequences that produced a token this step, in order
    result: SampleResult | None


class ModelRunner:
    def __init__(self, loaded: LoadedModel, pool: KVCachePool) -> None:
        self.loaded = loaded
        self.pool = pool
        self.device = loaded.device

    @torch.inference_mode()
    def execute(self, step: ScheduledStep) -> StepResult:
        input_ids: list[int] = []
        positions: list[int] = []
        entries: list[tuple[list[int], int, int]] = []
        keep: list[int] = []
        sampled: list[Sequence] = []
        offset = 0
        for seq, n in step.items:
            start = seq.num_cached
            input_ids.extend(seq.token_slice(start, n))
            positions.extend(range(start, start + n))
            entries.append((seq.block_table, start, n))
            offset += n
            if start + n == seq.num_tokens:  # the whole sequence is cached after this pass: sample
                keep.append(offset - 1)
                sampled.append(seq)
        batch = build_paged_batch(self.pool, entries, self.device)
        out = self.loaded.model(
            input_ids=torch.tensor([input_ids], device=self.device),
            position_ids=torch.tensor([positions], device=self.device),
            use_cache=False,
            # long even when empty: a step of prefill chunks that complete no prompt keeps no row
            logits_to_keep=torch.tensor(keep, dtype=torch.long, device=self.device),
            paged_batch=batch,
        )
        for seq, n in step.items:
            seq.num_cached += n
        if not sampled:
            return StepResult([], None)
        logits = out.logits[0]
        rows = [
            SampleRow(
                params=s.params,
                generator=s.generator,
                prompt_ids=s.prompt_ids,
                output_ids=s.output_ids,
                suppress_ids=sorted(s.eos_ids) if len(s.output_ids) < s.params.min_tokens else [],
            )
            for s in sampled
        ]
        return StepResult(sampled, sample(logits, rows))
