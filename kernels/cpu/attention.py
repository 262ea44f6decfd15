"""Attention with sinks and a sliding window on CPU, through torch's fused flash kernel.

torch's CPU flash attention (the kernel behind scaled_dot_product_attention) returns the
log-sum-exp of each query's scores, which is all a sink needs: with one sink logit s per head,
softmax over [keys..., sink] equals softmax over the keys scaled by
    sum(exp(scores)) / (sum(exp(scores)) + exp(s)) = sigmoid(lse - s),
and a query that sees no key (lse = -inf) gets 0, as in the reference.

Grouped-query attention without copying keys: the g query heads that share a key/value head
become g query rows of that head ([B, Hkv, Tq * g, D]), so the kernel reads each cached key
once; the causal/window mask is built per query position and repeated over the g rows.
Against the reference (float32 einsums over a float32 copy of the cache): 5x for a 512-token
prefill. For a few queries (decode) the fused kernel's set-up dominates (~0.28 ms against 500
keys), so bf16 decode uses attention.cpp instead (same math, float32 scores and sums).
"""
from __future__ import annotations

import torch

from .. import reference
from .build import extension

DECODE_MAX_QUERIES = 4  # up to this many queries per row: our kernel (no set-up cost)
_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def attention(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None):
    """Same contract as agent.kernels.reference.attention."""
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    if q.requires_grad or not (q.dtype == k.dtype == v.dtype) or Hq % Hkv:
        return reference.attention(q, k, v, sinks, q_positions, k_offset, window, scale)
    g = Hq // Hkv
    scale = D ** -0.5 if scale is None else scale
    if (Tq <= DECODE_MAX_QUERIES and q.dtype == torch.bfloat16 and D % 16 == 0
            and D <= 256 and g <= 8 and k.stride(-1) == v.stride(-1) == 1
            and k.stride(-2) == v.stride(-2) == D and (ext := extension()) is not None):
        out = ext.attention_decode(q, k, v, sinks, q_positions, int(k_offset),
                                   -1 if window is None else int(window), float(scale))
        return out.to(q.dtype)
    if _flash is None:
        return reference.attention(q, k, v, sinks, q_positions, k_offset, window, scale)
    k_pos = torch.arange(Tk, device=q.device) + k_offset
    q_pos = q_positions[:, :, None]
    visible = k_pos[None, None, :] <= q_pos
    if window is not None:
        visible &= k_pos[None, None, :] > q_pos - window
    mask = torch.zeros(visible.shape, dtype=q.dtype).masked_fill_(~visible, float("-inf"))
    mask = mask[:, None, :, None, :].expand(B, 1, Tq, g, Tk).reshape(B, 1, Tq * g, Tk)
    rows = q.view(B, Tq, Hkv, g, D).permute(0, 2, 1, 3, 4).reshape(B, Hkv, Tq * g, D)
    out, lse = _flash(rows, k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, scale=scale)
    head_sinks = sinks.float().view(Hkv, 1, g).expand(Hkv, Tq, g).reshape(Hkv, Tq * g)
    keep = torch.sigmoid(lse.float() - head_sinks)                       # [B, Hkv, Tq * g]
    out = (out.float() * keep[..., None]).view(B, Hkv, Tq, g, D)
    return out.permute(0, 2, 1, 3, 4).reshape(B, Tq, Hq, D).to(q.dtype)
