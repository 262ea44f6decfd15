"""Attention with sinks and a sliding window for many queries (prefill) on CPU.

torch's fused CPU flash attention (the kernel behind scaled_dot_product_attention) returns the
log-sum-exp of each query's scores, which is all a sink needs: with one sink logit s per head,
softmax over [keys..., sink] equals softmax over the keys scaled by
    sum(exp(scores)) / (sum(exp(scores)) + exp(s)) = sigmoid(lse - s),
and a query that sees no key (lse = -inf) gets 0, as in the reference. The causal/window mask
is one [Tq, Tk] additive mask shared by every head. For a few queries (decode) the reference's
two small matmuls are faster than the fused kernel's set-up, so it is used there.
"""
from __future__ import annotations

import torch

from .. import reference

MIN_QUERIES = 16
_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def attention(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None):
    """Same contract as agent.kernels.reference.attention."""
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    if _flash is None or Tq < MIN_QUERIES or q.requires_grad or q.dtype != k.dtype:
        return reference.attention(q, k, v, sinks, q_positions, k_offset, window, scale)
    scale = D ** -0.5 if scale is None else scale
    k_pos = torch.arange(Tk, device=q.device) + k_offset
    q_pos = q_positions[:, :, None]
    visible = k_pos[None, None, :] <= q_pos
    if window is not None:
        visible &= k_pos[None, None, :] > q_pos - window
    mask = torch.zeros(visible.shape, dtype=q.dtype).masked_fill_(~visible, float("-inf"))
    group = Hq // Hkv
    keys = k.transpose(1, 2).repeat_interleave(group, 1)
    values = v.transpose(1, 2).repeat_interleave(group, 1)
    out, lse = _flash(q.transpose(1, 2), keys, values, attn_mask=mask[:, None], scale=scale)
    keep = torch.sigmoid(lse.float() - sinks.float()[None, :, None])     # [B, Hq, Tq]
    return (out.float() * keep[..., None]).transpose(1, 2).to(q.dtype)
