from __future__ import annotations

import pytest
import torch

from modelport.engine.kv_cache import BlockAllocator, KVLayout, OutOfBlocks, blocks_needed


def test_allocate_and_free_round_trip() -> None:
    a = BlockAllocator(4)
    got = a.allocate(3)
    assert len(set(got)) == 3 and a.num_free == 1 and a.usage() == 0.75
    with pytest.raises(OutOfBlocks):
        a.allocate(2)
    a.free(got)
    assert a.num_free == 4 and got == []


def test_double_free_is_detected() -> None:
    a = BlockAllocator(2)
    blocks = a.allocate(1)
    copy = list(blocks)
    a.free(blocks)
    with pytest.raises(RuntimeError):
        a.free(copy)


def test_blocks_needed_rounds_up() -> None:
    assert [blocks_needed(n, 16) for n in (0, 1, 16, 17, 32)] == [0, 1, 1, 2, 2]


def test_budget_to_blocks() -> None:
    layout = KVLayout(num_layers=30, num_kv_heads=3, head_dim=64, block_size=16, dtype=torch.bfloat16)
    # 2 (k,v) * 30 layers * 16 tokens * 3 heads * 64 dims * 2 bytes
    assert layout.bytes_per_block() == 368_640
    assert layout.blocks_for_budget(2**30) == 2**30 // 368_640
