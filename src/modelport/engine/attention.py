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
    """One sequence's query tokens ``[start, end)`` in the packed row, attending to ``ctx_len`` tokens."""

    start: int
    end: int
    ctx_len: int
    gather_slots: torch.Tensor | None  # slots of all ctx_len tokens; None when nothing was cached before
    mask: torch.Tensor | None  # [q, ctx_len] bool, None when plain causal suffices


@dataclass(frozen=True)
class PagedBatch:
    """Per-step attention metadata, built once and shared by every layer."""

    pool: KVCachePool
    slot_mapping: torch.Tensor  # [T] slot each new token's K/V is written to
    decode_index: torch.Tensor | None  # [Bd] positions of single-token queries in the packed row
    decode_slots: torch.Tensor | None  # [Bd, L] slots to gather (padded)
    decode_mask: torch.Tensor | None  # [Bd, 1, 1, L] True where the slot is real
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
    decode_slot_rows: list[list[int]] = []
    prefills: list[PrefillChunk] = []
    offset = 0
    for block_table, cached, new in entries:
        total = cached + new
        slots = [block_table[p // bs] * bs + p % bs for p in range(total)]
        slot_mapping.extend(slots[cached:])
        if new == 1 and cached > 0:
            decode_pos.append(offset)
            decode_slot_rows.append(slots)
        elif cached == 0:
            prefills.append(PrefillChunk(offset, offset + new, total, None, None))
        else:
            q_pos = torch.arange(cached, total, device=device)[:, None]
            k_pos = torch.arange(total, device=device)[None, :]
            prefills.append(
                PrefillChunk(
                    offset,
                    offset + new,
                    total,
                    torch.tensor(slots, dtype=torch.long, device=device),
                    k_pos <= q_pos,
                )
            )
        offset += new
    decode_index = decode_slots = decode_mask = None
    if decode_pos:
        width = max(len(r) for r in decode_slot_rows)
        padded = [r + [0] * (width - len(r)) for r in decode_slot_rows]
        lengths = torch.tensor([len(r) for r in decode_slot_rows], device=device)
        decode_index = torch.tensor(decode_pos, dtype=torch.long, device=device)
        decode_slots = torch.tensor(padded, dtype=torch.long, device=device)
        decode_mask = (torch.arange(width, device=device)[None, :] < lengths[:, None])[:, None, None, :]
    return PagedBatch(
        pool=pool,
        slot_mapping=torch.tensor(slot_mapping, dtype=torch.long, device=device),
        decode_index=decode_index,
        decode_slots=decode_slots,
        decode_mask=decode_mask,
        prefills=tuple(prefills),
    )


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
        assert batch.decode_slots is not None and batch.decode_mask is not None
        n = batch.decode_index.shape[0]
        # GQA packed: the query heads that share a KV head become that head's "query positions".
        qd = q.index_select(1, batch.decode_index).transpose(0, 1).reshape(n, num_kv, group, head_dim)
        kd = k_cache[batch.decode_slots].transpose(1, 2)  # [n, Hkv, L, D]
        vd = v_cache[batch.decode_slots].transpose(1, 2)
        od = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=batch.decode_mask, scale=scaling)
        out[batch.decode_index] = od.reshape(n, num_heads, head_dim)

    for chunk in batch.prefills:
        qp = q[:, chunk.start : chunk.end].unsqueeze(0)
        if chunk.gather_slots is None:
            kp = key[:, :, chunk.start : chunk.end]
            vp = value[:, :, chunk.start : chunk.end]
            op = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, scale=scaling, enable_gqa=True)
        else:
            kp = k_cache[chunk.gather_slots].transpose(0, 1).unsqueeze(0)
            vp = v_cache[chunk.gather_slots].transpose(0, 1).unsqueeze(0)
            op = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=chunk.mask, scale=scaling, enable_gqa=True)
        out[chunk.start : chunk.end] = op[0].transpose(0, 1)
    return out.unsqueeze(0), None


def register() -> None:
    """Make ``attn_implementation="modelport_paged"`` known to transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, paged_attention_forward)
