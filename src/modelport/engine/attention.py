"""Paged attention plugged into transformers model code.

The runner packs every scheduled token of every sequence into one ragged row
(``input_ids`` of shape ``[1, T]``) and passes a `PagedBatch` through the model's forward
kwargs. transformers hands those kwargs to the attention function registered here, which
writes the new keys/values into the paged pool and attends over each sequence's blocks.
Everything outside attention (embeddings, MLPs, norms, lm_head) runs once over all T tokens,
with no padding. Decode tokens (one query each) are attended in one padded batch; prefill
chunks one sequence at a time, with a causal mask offset by the tokens already cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from modelport.engine.kv_cache import KVCachePool

ATTN_IMPLEMENTATION = "modelport_paged"


@dataclass(frozen=True)
class PrefillChunk:
    """One sequence's query tokens ``[start, end)`` in the packed row."""

    start: int
    end: int
    gather_blocks: torch.Tensor | None  # blocks holding the context; None when nothing was cached before
    mask: torch.Tensor | None  # [q, blocks * block_size] bool, None when plain causal suffices


@dataclass(frozen=True)
class PagedBatch:
    """Per-step attention metadata, built once and shared by every layer."""

    pool: KVCachePool
    slot_mapping: torch.Tensor  # [T] slot each new token's K/V is written to
    decode_index: torch.Tensor | None  # [Bd] positions of single-token queries in the packed row
    decode_blocks: torch.Tensor | None  # [Bd, nblocks] block tables, padded by repeating the last block
    decode_mask: torch.Tensor | None  # [Bd, 1, 1, nblocks * block_size] True where the slot holds a token
    prefills: tuple[PrefillChunk, ...]


def build_paged_batch(
    pool: KVCachePool,
    entries: list[tuple[list[int], int, int]],
    device: torch.device,
) -> PagedBatch:
    """``entries``: per sequence (block_table, num_cached_tokens, num_new_tokens), in packed order."""
    bs = pool.block_size
    slot_mapping: list[int] = []
    decode_pos: list[int] = []
    decode_tables: list[list[int]] = []
    decode_lens: list[int] = []
    prefills: list[PrefillChunk] = []
    offset = 0
    for block_table, cached, new in entries:
        total = cached + new
        slot_mapping.extend(block_table[p // bs] * bs + p % bs for p in range(cached, total))
        nblocks = -(-total // bs)
        if new == 1 and cached > 0:
            decode_pos.append(offset)
            decode_tables.append(block_table[:nblocks])
            decode_lens.append(total)
        elif cached == 0:
            prefills.append(PrefillChunk(offset, offset + new, None, None))
        else:
            q_pos = torch.arange(cached, total, device=device)[:, None]
            k_pos = torch.arange(nblocks * bs, device=device)[None, :]
            prefills.append(
                PrefillChunk(
                    offset,
                    offset + new,
                    torch.tensor(block_table[:nblocks], dtype=torch.long, device=device),
                    k_pos <= q_pos,
                )
            )
        offset += new
    decode_index = decode_blocks = decode_mask = None
    if decode_pos:
        width = max(len(t) for t in decode_tables)
        padded = [t + [t[-1]] * (width - len(t)) for t in decode_tables]
        lengths = torch.tensor(decode_lens, device=device)
        decode_index = torch.tensor(decode_pos, dtype=torch.long, device=device)
        decode_blocks = torch.tensor(padded, dtype=torch.long, device=device)
        decode_mask = (torch.arange(width * bs, device=device)[None, :] < lengths[:, None])[:, None, None, :]
    return PagedBatch(
        pool=pool,
        slot_mapping=torch.tensor(slot_mapping, dtype=torch.long, device=device),
        decode_index=decode_index,
        decode_blocks=decode_blocks,
        decode_mask=decode_mask,
        prefills=tuple(prefills),
    )


def _gather_blocks(cache: torch.Tensor, block_size: int, blocks: torch.Tensor) -> torch.Tensor:
    """Copy whole blocks (contiguous runs of slots) rather than single slots: far fewer, larger copies.

    ``cache`` is ``[slots, Hkv, D]``; ``blocks`` is ``[..., n]``; returns ``[..., n * block_size, Hkv, D]``.
    """
    by_block = cache.view(-1, block_size, *cache.shape[1:])
    flat = by_block.index_select(0, blocks.reshape(-1))
    return flat.view(*blocks.shape[:-1], blocks.shape[-1] * block_size, *cache.shape[1:])


def paged_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention interface: query ``[1, Hq, T, D]``, key/value ``[1, Hkv, T, D]``."""
    batch: PagedBatch | None = kwargs.get("paged_batch")
    if batch is None:
        raise RuntimeError("modelport_paged attention needs a PagedBatch in the forward kwargs")
    if kwargs.get("softcap") is not None:
        raise NotImplementedError("attention logit soft-capping is not supported by the modelport engine")
    layer = int(getattr(module, "layer_idx", 0))
    k_cache = batch.pool.keys(layer)
    v_cache = batch.pool.values(layer)
    q = query[0]  # [Hq, T, D]
    k_new = key[0].transpose(0, 1)  # [T, Hkv, D]
    v_new = value[0].transpose(0, 1)
    k_cache.index_copy_(0, batch.slot_mapping, k_new.to(k_cache.dtype))
    v_cache.index_copy_(0, batch.slot_mapping, v_new.to(v_cache.dtype))

    num_heads, total, head_dim = q.shape
    num_kv = k_new.shape[1]
    group = num_heads // num_kv
    out = q.new_empty((total, num_heads, head_dim))

    if batch.decode_index is not None:
        assert batch.decode_blocks is not None and batch.decode_mask is not None
        n = batch.decode_index.shape[0]
        # GQA packed: the query heads that share a KV head become that head's "query positions".
        qd = q.index_select(1, batch.decode_index).transpose(0, 1).reshape(n, num_kv, group, head_dim)
        bs = batch.pool.block_size
        kd = _gather_blocks(k_cache, bs, batch.decode_blocks).transpose(1, 2)  # [n, Hkv, L, D]
        vd = _gather_blocks(v_cache, bs, batch.decode_blocks).transpose(1, 2)
        od = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=batch.decode_mask, scale=scaling)
        out[batch.decode_index] = od.reshape(n, num_heads, head_dim)

    for chunk in batch.prefills:
        qp = q[:, chunk.start : chunk.end].unsqueeze(0)
        if chunk.gather_blocks is None:
            kp = key[:, :, chunk.start : chunk.end]
            vp = value[:, :, chunk.start : chunk.end]
            op = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, scale=scaling, enable_gqa=True)
        else:
            bs = batch.pool.block_size
            kp = _gather_blocks(k_cache, bs, chunk.gather_blocks).transpose(0, 1).unsqueeze(0)
            vp = _gather_blocks(v_cache, bs, chunk.gather_blocks).transpose(0, 1).unsqueeze(0)
            op = F.scaled_dot_product_attention(
                qp, kp, vp, attn_mask=chunk.mask, scale=scaling, enable_gqa=True
            )
        out[chunk.start : chunk.end] = op[0].transpose(0, 1)
    return out.unsqueeze(0), None


def register() -> None:
    """Make ``attn_implementation="modelport_paged"`` known to transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, paged_attention_forward)
