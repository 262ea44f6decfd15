"""Attention with sinks and a sliding window on CPU.

bf16 q, k, v (the runtime's prefill and decode) go through our kernel (attention.cpp): tiled,
online softmax, sinks folded in, whole tiles outside a query's window skipped; for a few
queries the keys are split across threads so each streams a contiguous stretch of the cache.
On 20b shapes it runs 2-3x torch's flash kernel for a 512-token chunk at 2-16k cached keys
and decodes at 8k keys 2x faster than the per-query kernel it replaced (BENCHMARKS.md). The
runtime's bf16 KV caches hold the kernel's packed layouts (`packed_cache`), which
`attention_packed` reads as they are: decode then packs nothing (1.4x at 16k keys).

float32 (the transformers oracle tests, training) and shapes the kernel does not take go through
torch's fused flash kernel, which returns the log-sum-exp of each query's scores, all a sink
needs: with one sink logit s per head, softmax over [keys..., sink] equals softmax over the
keys scaled by
    sum(exp(scores)) / (sum(exp(scores)) + exp(s)) = sigmoid(lse - s),
and a query that sees no key (lse = -inf) gets 0, as in the reference. Grouped-query attention
without copying keys: the g query heads that share a key/value head become g query rows of
that head ([B, Hkv, Tq * g, D]), so the kernel reads each cached key once.
"""
from __future__ import annotations

import torch

from .. import reference
from .build import extension

_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def attention(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None):
    """Same contract as agent.kernels.reference.attention."""
    D, Hq, Hkv = q.shape[-1], q.shape[2], k.shape[2]
    if q.requires_grad or not (q.dtype == k.dtype == v.dtype) or Hq % Hkv:
        return reference.attention(q, k, v, sinks, q_positions, k_offset, window, scale)
    scale = D ** -0.5 if scale is None else scale
    if (q.dtype == torch.bfloat16 and D % 64 == 0 and D <= 256 and k.stride(-1) == v.stride(-1) == 1
            and k.stride(-2) == v.stride(-2) == D and (ext := extension()) is not None):
        return ext.attention_bf16(q, k, v, sinks, q_positions, int(k_offset),
                                  -1 if window is None else int(window), float(scale))
    if _flash is None:
        return reference.attention(q, k, v, sinks, q_positions, k_offset, window, scale)
    return _flash_attention(q, k, v, sinks, q_positions, int(k_offset), window, scale)


def packed_cache(dtype, head_dim):
    """bf16 caches hold the kernel's packed layouts: decode then reads the keys and values as
    they are, where it packed every block of them again at every step (BENCHMARKS.md)."""
    return (dtype == torch.bfloat16 and head_dim % 64 == 0 and head_dim <= 256
            and extension() is not None)


def store_packed(keys, values, k, v, positions):
    if keys.dtype == torch.bfloat16 and keys.is_contiguous() and (ext := extension()) is not None:
        ext.kv_store_packed(keys, values, k.to(keys.dtype), v.to(values.dtype), positions)
    else:
        reference.store_packed(keys, values, k, v, positions)


def attention_packed(q, keys, values, sinks, q_positions, length, window=None, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if (keys.dtype == torch.bfloat16 and not q.requires_grad and packed_cache(q.dtype, q.shape[-1])
            and keys.shape[2] * 16 % 64 == 0):
        return extension().attention_bf16_packed(q, keys, values, sinks, q_positions, int(length),
                                         -1 if window is None else int(window), float(scale))
    return reference.attention_packed(q, keys, values, sinks, q_positions, length, window, scale)


def _flash_attention(q, k, v, sinks, q_positions, k_offset, window, scale):
    """Queries against the cache through torch's flash kernel. Keys no query can see are never
    read (a sliding layer reads its window, not the whole cache); on a full layer the keys
    every query sees (all before the earliest query) go through the kernel without a mask,
    and only the last few (the chunk's own, causal) need one. The two parts' softmaxes merge
    by their log-sum-exps, with the sink joining the normalisation."""
    B, Tq, Hq, D = q.shape
    Hkv = k.shape[2]
    g = Hq // Hkv
    first_q, last_q = int(q_positions.min()), int(q_positions.max())
    lo = 0 if window is None else max(0, first_q - window + 1 - k_offset)
    hi = max(lo, min(k.shape[1], last_q - k_offset + 1))
    k, v, k_offset = k[:, lo:hi], v[:, lo:hi], k_offset + lo
    rows = q.view(B, Tq, Hkv, g, D).permute(0, 2, 1, 3, 4).reshape(B, Hkv, Tq * g, D)
    keys, values = k.transpose(1, 2), v.transpose(1, 2)
    # keys [0, open) are visible to every query: a full layer's cache before the chunk
    open_ = 0 if window is not None else max(0, min(k.shape[1], first_q - k_offset + 1))
    parts = []  # (output, log-sum-exp) of each part of the keys
    if open_:
        out, lse = _flash(rows, keys[:, :, :open_], values[:, :, :open_], scale=scale)
        parts.append((out, lse.float()))
    if open_ < k.shape[1]:
        mask, seen = _mask(q_positions, k_offset + open_, k.shape[1] - open_, window, q.dtype, g)
        out, lse = _flash(rows, keys[:, :, open_:], values[:, :, open_:], attn_mask=mask,
                          scale=scale)
        # the kernel gives a query that sees no key here an lse of 0: it must weigh nothing
        parts.append((out, lse.float().masked_fill(~seen, float("-inf"))))
    head_sinks = sinks.float().view(Hkv, 1, g).expand(Hkv, Tq, g).reshape(Hkv, Tq * g)
    top = torch.stack([lse for _, lse in parts] + [head_sinks.expand(B, Hkv, Tq * g)]).amax(0)
    total = torch.exp(head_sinks - top)
    out = torch.zeros(B, Hkv, Tq * g, D)
    for part, lse in parts:
        weight = torch.exp(lse - top)           # 0 where a query saw no key of this part
        total = total + weight
        out += torch.nan_to_num(part.float()) * weight[..., None]
    out = (out / total[..., None]).view(B, Hkv, Tq, g, D)
    return out.permute(0, 2, 1, 3, 4).reshape(B, Tq, Hq, D).to(q.dtype)


def _mask(q_positions, k_offset: int, n: int, window, dtype, g: int):
    """The additive mask [B, 1, Tq * g, n] of keys k_offset .. k_offset + n - 1, and which
    query rows see at least one of them ([B, 1, Tq * g])."""
    B, Tq = q_positions.shape
    k_pos = torch.arange(n, device=q_positions.device) + k_offset
    q_pos = q_positions[:, :, None]
    visible = k_pos[None, None, :] <= q_pos
    if window is not None:
        visible &= k_pos[None, None, :] > q_pos - window
    mask = torch.zeros(visible.shape, dtype=dtype).masked_fill_(~visible, float("-inf"))
    seen = visible.any(-1)[:, None, :, None].expand(B, 1, Tq, g).reshape(B, 1, Tq * g)
    return mask[:, None, :, None, :].expand(B, 1, Tq, g, n).reshape(B, 1, Tq * g, n), seen
