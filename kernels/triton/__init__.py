"""Triton kernels for CUDA tensors (agent.kernels dispatches here on CUDA).

moe: MXFP4 expert matmuls with gather/scatter and the clamped SwiGLU fused (moe.py).
attention: sinks + sliding window; flash-style for prefill, split-K for decode (attention.py).
Everything else (rms_norm, rope, swiglu) falls back to the reference, which is already a few
fused-enough torch ops on GPU. On CPU these kernels run only under TRITON_INTERPRET=1 (tests).
"""
from __future__ import annotations

from .. import reference
from .attention import attention as attention_prefill
from .attention import attention_decode
from .moe import moe_experts

DECODE_MAX_QUERIES = 4    # at most this many queries per row: split-K over the keys
DECODE_MIN_KEYS = 512     # ... when there are enough keys to split


def attention(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None):
    """agent.kernels.attention on CUDA (see agent.kernels.reference.attention)."""
    if q.requires_grad or q.shape[-1] & (q.shape[-1] - 1):
        return reference.attention(q, k, v, sinks, q_positions, k_offset, window, scale)
    if q.shape[1] <= DECODE_MAX_QUERIES and k.shape[1] >= DECODE_MIN_KEYS:
        return attention_decode(q, k, v, sinks, q_positions, k_offset, window, scale)
    return attention_prefill(q, k, v, sinks, q_positions, k_offset, window, scale)


def moe(x, router_weight, router_bias, experts, top_k, alpha=1.702, limit=7.0):
    """agent.kernels.moe on CUDA: packed MXFP4 experts in Triton, anything else by reference."""
    if not hasattr(experts, "gate_up_blocks") or x.requires_grad:
        return reference.moe(x, router_weight, router_bias, experts, top_k, alpha, limit)
    weights, index = reference.route(x, router_weight, router_bias, top_k)
    return moe_experts(x, weights, index, experts, alpha, limit)
