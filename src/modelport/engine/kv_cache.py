"""The paged KV cache: a preallocated pool of fixed-size blocks, sized from a memory budget.

`BlockAllocator` is the pure bookkeeping (which block belongs to nobody); `KVCachePool`
owns the tensors. One tensor holds every layer's keys and values so the whole budget is
allocated once at start-up and never grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy
import torch


class OutOfBlocks(Exception):
    """Raised by `BlockAllocator.allocate` when the pool cannot satisfy a request."""


class BlockAllocator:
    """Free-list bookkeeping for `num_blocks` blocks. LIFO reuse keeps recently freed memory warm."""

    def __init__(self, num_blocks: int) -> None:
        if num_blocks <= 0:
            raise ValueError("the KV cache needs at least one block")
        self.num_blocks = num_blocks
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))
        self._owned = [False] * num_blocks

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    def usage(self) -> float:
        return self.num_used / self.num_blocks

    def can_allocate(self, n: int) -> bool:
        return n <= len(self._free)

    def allocate(self, n: int) -> list[int]:
        if n > len(self._free):
            raise OutOfBlocks(f"asked for {n} blocks, {len(self._free)} free")
        blocks = [self._free.pop() for _ in range(n)]
        for b in blocks:
            self._owned[b] = True
        return blocks

    def free(self, blocks: list[int]) -> None:
        """Give ``blocks`` back and empty the list, so the same block table is never freed twice."""
        for b in blocks:
            if not self._owned[b]:
                raise RuntimeError(f"block {b} freed twice")
            self._owned[b] = False
            self._free.append(b)
        blocks.clear()


def blocks_needed(num_tokens: int, block_size: int) -> int:
    return (num_tokens + block_size - 1) // block_size


@dataclass(frozen=True)
class KVLayout:
    num_layers: int
    num_kv_heads: int
    head_dim: int
    block_size: int
    dtype: torch.dtype

    def bytes_per_block(self) -> int:
        elem = torch.finfo(self.dtype).bits // 8
        return 2 * self.num_layers * self.block_size * self.num_kv_heads * self.head_dim * elem

    def blocks_for_budget(self, budget_bytes: int) -> int:
        return budget_bytes // self.bytes_per_block()


class KVCachePool:
    """Key/value storage for every layer: ``data[layer, 0|1, slot, kv_head, head_dim]``.

    A slot is ``block * block_size + offset``; sequences address their tokens through block tables.
    """

    def __init__(self, layout: KVLayout, num_blocks: int, device: torch.device) -> None:
        self.layout = layout
        self.num_blocks = num_blocks
        self.allocator = BlockAllocator(num_blocks)
        shape = (layout.num_layers, 2, num_blocks * layout.block_size, layout.num_kv_heads, layout.head_dim)
        self.data = _zeros(shape, layout.dtype, device)

    @property
    def block_size(self) -> int:
        return self.layout.block_size

    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def keys(self, layer: int) -> torch.Tensor:
        return self.data[layer, 0]

    def values(self, layer: int) -> torch.Tensor:
        return self.data[layer, 1]


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A zero-filled pool. On CPU it comes from calloc, whose large blocks are fresh pages the
    kernel zero-fills on first touch: no 1 GiB memset at start (about 0.4 s), and a replica
    (a warm standby above all) holds only the pages its requests have used."""
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = torch.from_numpy(numpy.zeros(math.prod(shape) * itemsize, dtype=numpy.uint8))
    return raw.view(dtype).view(shape)
