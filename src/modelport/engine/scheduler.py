"""Continuous batching: which sequences run in the next step, and how many tokens each.

Every step, running sequences go first (one decode token each, or the next chunk of a
prefill), then waiting sequences are admitted first-come-first-served while the token
budget, the sequence cap and the free KV blocks allow. When a running sequence needs a new
block and none is free, the most recently admitted sequence is preempted: its blocks are
freed and it returns to the front of the queue to be recomputed later (prompt + what it
has generated so far), so a full pool slows requests down instead of failing them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from modelport.engine.kv_cache import BlockAllocator, blocks_needed
from modelport.engine.sequence import SeqStatus, Sequence


@dataclass(frozen=True)
class SchedulerConfig:
    block_size: int
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048


@dataclass
class ScheduledStep:
    """The plan for one forward pass: (sequence, number of new tokens) in packed order."""

    items: list[tuple[Sequence, int]] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(n for _, n in self.items)


class Scheduler:
    def __init__(self, config: SchedulerConfig, allocator: BlockAllocator) -> None:
        self.config = config
        self.allocator = allocator
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        seq.status = SeqStatus.WAITING
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def fits_at_all(self, num_tokens: int) -> bool:
        """Whether a sequence of this many tokens could ever hold its KV in the whole pool."""
        return blocks_needed(num_tokens, self.config.block_size) <= self.allocator.num_blocks

    def remove(self, seq: Sequence) -> None:
        """Take a sequence out (finished or aborted) and give its blocks back at once.
        In the engine only `_end` calls it; a second call finds no blocks left to free."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self._release(seq)
        seq.status = SeqStatus.FINISHED

    def _release(self, seq: Sequence) -> None:
        if seq.block_table:
            self.allocator.free(seq.block_table)
        seq.num_cached = 0

    def _grow(self, seq: Sequence, upto_tokens: int) -> bool:
        need = blocks_needed(upto_tokens, self.config.block_size) - len(seq.block_table)
        if need <= 0:
            return True
        if not self.allocator.can_allocate(need):
            return False
        seq.block_table.extend(self.allocator.allocate(need))
        return True

    def _preempt(self, seq: Sequence, step: ScheduledStep) -> None:
        self.running.remove(seq)
        self._release(seq)
        seq.status = SeqStatus.WAITING
        seq.num_preemptions += 1
        self.waiting.appendleft(seq)
        step.preempted.append(seq)

    def schedule(self) -> ScheduledStep:
        step = ScheduledStep()
        budget = self.config.max_num_batched_tokens
        queue = list(self.running)  # admission order: earliest first
        scheduled: set[int] = set()
        i = 0
        while i < len(queue) and budget > 0:
            seq = queue[i]
            i += 1
            if seq.status is not SeqStatus.RUNNING:
                continue  # preempted earlier in this loop
            n = min(seq.num_tokens - seq.num_cached, budget)
            while not self._grow(seq, seq.num_cached + n):
                victim = self.running[-1]
                if id(victim) in scheduled:
                    # only already-scheduled sequences are left to take from: yield this one instead
                    victim = seq
                self._preempt(victim, step)
                if victim is seq:
                    break
            if seq.status is SeqStatus.RUNNING:
                step.items.append((seq, n))
                scheduled.add(id(seq))
                budget -= n
        if step.preempted:
            return step  # the pool is under pressure: admit nobody this step
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            n = min(seq.num_tokens - seq.num_cached, budget)
            if not self._grow(seq, seq.num_cached + n):
                break  # admission waits for blocks
            self.waiting.popleft()
            seq.status = SeqStatus.RUNNING
            self.running.append(seq)
            step.items.append((seq, n))
            budget -= n
        return step
