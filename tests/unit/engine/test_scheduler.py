from __future__ import annotations

from modelport.engine.kv_cache import BlockAllocator
from modelport.engine.sampling import SamplingParams
from modelport.engine.scheduler import Scheduler, SchedulerConfig
from modelport.engine.sequence import IncrementalDetokenizer, SeqStatus, Sequence


class _NoTokenizer:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(97 + i % 26) for i in ids)


def seq(rid: str, prompt_len: int) -> Sequence:
    return Sequence(
        rid,
        0,
        list(range(prompt_len)),
        SamplingParams(max_tokens=100),
        frozenset(),
        4096,
        IncrementalDetokenizer(_NoTokenizer()),
        None,
        lambda out: None,
    )


def run_step(s: Scheduler) -> list[tuple[str, int]]:
    step = s.schedule()
    for q, n in step.items:
        q.num_cached += n
        if q.num_cached == q.num_tokens:
            q.output_ids.append(1)
    return [(q.request_id, n) for q, n in step.items]


def test_requests_join_and_leave_the_running_batch() -> None:
    s = Scheduler(
        SchedulerConfig(block_size=4, max_num_seqs=8, max_num_batched_tokens=64), BlockAllocator(64)
    )
    a = seq("a", 5)
    s.add(a)
    assert run_step(s) == [("a", 5)]
    s.add(seq("b", 3))
    assert run_step(s) == [("a", 1), ("b", 3)]  # b joins while a decodes
    s.remove(a)
    assert run_step(s) == [("b", 1)]  # a left; its blocks are back
    assert s.allocator.num_used == 1


def test_long_prompt_is_chunked_by_the_token_budget() -> None:
    s = Scheduler(SchedulerConfig(block_size=4, max_num_seqs=8, max_num_batched_tokens=8), BlockAllocator(64))
    s.add(seq("a", 20))
    assert [run_step(s) for _ in range(3)] == [[("a", 8)], [("a", 8)], [("a", 4)]]


def test_admission_waits_when_blocks_run_out() -> None:
    s = Scheduler(SchedulerConfig(block_size=4, max_num_seqs=8, max_num_batched_tokens=64), BlockAllocator(3))
    s.add(seq("a", 8))  # 2 blocks
    s.add(seq("b", 8))  # needs 2 more: only 1 left
    assert run_step(s) == [("a", 8)]
    assert [q.request_id for q in s.waiting] == ["b"]


def test_preemption_frees_the_newest_and_requeues_it_first() -> None:
    s = Scheduler(SchedulerConfig(block_size=4, max_num_seqs=8, max_num_batched_tokens=64), BlockAllocator(4))
    a, b = seq("a", 7), seq("b", 8)
    s.add(a)
    s.add(b)
    assert run_step(s) == [("a", 7), ("b", 8)]  # 2 + 2 blocks: pool full
    # a now has 8 tokens -> fits its 2 blocks; b has 9 -> needs a 3rd block: b (newest) is preempted
    assert run_step(s) == [("a", 1)]
    assert b.status is SeqStatus.WAITING and b.num_cached == 0 and b.block_table == []
    assert s.waiting[0] is b and b.num_preemptions == 1
    s.remove(a)
    assert run_step(s) == [("b", 9)]  # recomputed: prompt + its generated token
