"""Attention with a learned sink per head and an optional sliding window, in Triton.

Same contract as agent.kernels.reference.attention. Two kernels:

  prefill (flash-style): one program per (batch row, query head, BLOCK_M queries) walks only the
      key blocks its queries can see (causal and window bounds from their positions) with an
      online softmax. The sink enters as the softmax's starting point: running max = sink
      logit, running sum = exp(sink - max) = 1, so it is counted once and contributes no value.
  decode (split-K): for few queries and many keys, programs (batch row, head, split) each take
      one slice of the visible keys and leave (max, sum, weighted values); a torch epilogue
      merges the slices together with the sink.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _visible_keys(q_pos, q_valid, k_offset, Tk, window, HAS_WINDOW: tl.constexpr):
    """Key slots [lo, hi) that some valid query at positions q_pos may see."""
    hi = tl.minimum(tl.max(tl.where(q_valid, q_pos, -1), axis=0) - k_offset + 1, Tk)
    lo = 0
    if HAS_WINDOW:
        first = tl.min(tl.where(q_valid, q_pos, 2147483647), axis=0)
        lo = tl.maximum(first - window + 1 - k_offset, 0)
    return lo, hi


@triton.jit
def _prefill_kernel(q, k, v, sinks, q_positions, out, Tq, Tk, Hq, Hkv, k_offset, window, scale,
                    HAS_WINDOW: tl.constexpr, D: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m, head, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    kv_head = head // (Hq // Hkv)
    m_offs = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    d = tl.arange(0, D)
    q_valid = m_offs < Tq
    q_pos = tl.load(q_positions + b * Tq + m_offs, mask=q_valid, other=-1)
    q_rows = ((b * Tq + m_offs) * Hq + head).to(tl.int64)
    qt = tl.load(q + q_rows[:, None] * D + d[None, :], mask=q_valid[:, None], other=0.0)

    m_i = tl.zeros((BLOCK_M,), dtype=tl.float32) + tl.load(sinks + head).to(tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32) + 1.0
    acc = tl.zeros((BLOCK_M, D), dtype=tl.float32)
    lo, hi = _visible_keys(q_pos, q_valid, k_offset, Tk, window, HAS_WINDOW)
    for start in range((lo // BLOCK_N) * BLOCK_N, hi, BLOCK_N):
        n_offs = start + tl.arange(0, BLOCK_N)
        k_rows = ((b * Tk + n_offs) * Hkv + kv_head).to(tl.int64)
        kt = tl.load(k + k_rows[:, None] * D + d[None, :], mask=(n_offs < Tk)[:, None], other=0.0)
        vt = tl.load(v + k_rows[:, None] * D + d[None, :], mask=(n_offs < Tk)[:, None], other=0.0)
        s = tl.dot(qt, tl.trans(kt)).to(tl.float32) * scale
        k_pos = n_offs + k_offset
        seen = (k_pos[None, :] <= q_pos[:, None]) & (n_offs < Tk)[None, :]
        if HAS_WINDOW:
            seen = seen & (k_pos[None, :] > q_pos[:, None] - window)
        s = tl.where(seen, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        correction = tl.exp(m_i - m_new)
        l_i = l_i * correction + tl.sum(p, axis=1)
        acc = acc * correction[:, None] + tl.dot(p.to(vt.dtype), vt).to(tl.float32)
        m_i = m_new
    tl.store(out + q_rows[:, None] * D + d[None, :], (acc / l_i[:, None]).to(out.dtype.element_ty),
             mask=q_valid[:, None])


@triton.jit
def _decode_split_kernel(q, k, v, q_positions, part_max, part_sum, part_acc, Tq, Tk, Hq, Hkv,
                         k_offset, window, scale, split_len,
                         HAS_WINDOW: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr):
    """One query row (b, t), one head, keys [split * split_len, +split_len) within view."""
    row, head, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    num_splits = tl.num_programs(2)
    b = row // Tq
    kv_head = head // (Hq // Hkv)
    d = tl.arange(0, D)
    q_pos = tl.load(q_positions + row)
    qv = tl.load(q + ((row * Hq + head).to(tl.int64)) * D + d).to(tl.float32)
    m_i = tl.full([], float("-inf"), tl.float32)
    l_i = tl.full([], 0.0, tl.float32)
    acc = tl.zeros((D,), dtype=tl.float32)
    lo = split * split_len
    hi = tl.minimum(lo + split_len, tl.minimum(q_pos - k_offset + 1, Tk))
    if HAS_WINDOW:
        lo = tl.maximum(lo, q_pos - window + 1 - k_offset)
    for start in range(lo, hi, BLOCK_N):
        n_offs = start + tl.arange(0, BLOCK_N)
        inside = n_offs < hi
        k_rows = ((b * Tk + n_offs) * Hkv + kv_head).to(tl.int64)
        kt = tl.load(k + k_rows[:, None] * D + d[None, :], mask=inside[:, None], other=0.0)
        vt = tl.load(v + k_rows[:, None] * D + d[None, :], mask=inside[:, None], other=0.0)
        s = tl.sum(kt.to(tl.float32) * qv[None, :], axis=1) * scale
        s = tl.where(inside, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=0))
        p = tl.exp(s - m_new)
        correction = tl.exp(m_i - m_new)
        l_i = l_i * correction + tl.sum(p, axis=0)
        acc = acc * correction + tl.sum(p[:, None] * vt.to(tl.float32), axis=0)
        m_i = m_new
    slot = (row * Hq + head) * num_splits + split
    tl.store(part_max + slot, m_i)
    tl.store(part_sum + slot, l_i)
    tl.store(part_acc + slot.to(tl.int64) * D + d, acc)


def _shapes(q, k, scale):
    """(B, Tq, Hq, D, Tk, Hkv, scale), after checking what the kernels need."""
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    if D & (D - 1) or D < 16:
        raise ValueError(f"triton attention: head_dim {D} must be a power of two >= 16")
    if Hq % Hkv:
        raise ValueError(f"triton attention: {Hq} query heads not a multiple of {Hkv} kv heads")
    return B, Tq, Hq, D, Tk, Hkv, D ** -0.5 if scale is None else scale


def attention(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None,
              block_m: int = 16, block_n: int = 16):
    """Flash-style prefill (see the module docstring); [B, Tq, Hq, D] in q's dtype."""
    B, Tq, Hq, D, Tk, Hkv, scale = _shapes(q, k, scale)
    out = torch.empty_like(q)
    grid = (triton.cdiv(Tq, block_m), Hq, B)
    _prefill_kernel[grid](q.contiguous(), k.contiguous(), v.contiguous(), sinks.contiguous(),
                          q_positions.contiguous(), out, Tq, Tk, Hq, Hkv, int(k_offset),
                          int(window or 0), float(scale), HAS_WINDOW=window is not None, D=D,
                          BLOCK_M=block_m, BLOCK_N=block_n)
    return out


def attention_decode(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None,
                     split_len: int = 256, block_n: int = 64):
    """Split-K attention for few query rows over many keys; same contract as `attention`."""
    B, Tq, Hq, D, Tk, Hkv, scale = _shapes(q, k, scale)
    splits = max(1, triton.cdiv(Tk, split_len))
    part_max = torch.empty(B * Tq, Hq, splits, dtype=torch.float32, device=q.device)
    part_sum = torch.empty_like(part_max)
    part_acc = torch.empty(B * Tq, Hq, splits, D, dtype=torch.float32, device=q.device)
    _decode_split_kernel[(B * Tq, Hq, splits)](
        q.contiguous(), k.contiguous(), v.contiguous(), q_positions.contiguous(),
        part_max, part_sum, part_acc, Tq, Tk, Hq, Hkv, int(k_offset), int(window or 0),
        float(scale), split_len, HAS_WINDOW=window is not None, D=D, BLOCK_N=block_n)
    # merge the splits and the sink: softmax over [sink, keys of every split]
    sink = sinks.float().view(1, Hq)
    top = torch.maximum(part_max.amax(-1), sink)                       # [B*Tq, Hq]
    weight = torch.exp(part_max - top[..., None])                      # empty split: exp(-inf)=0
    total = torch.exp(sink - top) + (weight * part_sum).sum(-1)
    out = (weight[..., None] * part_acc).sum(-2) / total[..., None]
    return out.view(B, Tq, Hq, D).to(q.dtype)
