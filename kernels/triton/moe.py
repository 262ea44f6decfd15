"""Mixture of experts on packed MXFP4 weights in Triton (CUDA; TRITON_INTERPRET=1 on CPU).

The rows (token, slot) are sorted by expert and each expert's group is padded to a multiple of
BLOCK_M, so every program works on BLOCK_M rows of one expert (`align`). Two kernels:

  gate_up: gathers the rows' tokens from x, multiplies by the expert's [2I, H] MXFP4 weight
           (decoded in registers, tile by tile), adds the bias and applies the clamped SwiGLU
           to the interleaved (gate, linear) columns before storing [rows, I];
  down:    multiplies by the [H, I] weight, adds the bias, scales by the routing weight and
           scatters each row back to its (token, slot) position; the top_k slots are summed.

MXFP4: byte j of a 32-value block holds value 2j (low nibble) and 2j+1 (high nibble); E2M1
codes are decoded arithmetically (no lookup table in registers) and scaled by 2^(s - 127).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _fp4_to_float(code):
    """E2M1 code (0..15) -> float32: sign bit 3, exponent bits 2..1, mantissa bit 0."""
    exponent = (code >> 1) & 3
    mantissa = (code & 1).to(tl.float32)
    normal = (1.0 + 0.5 * mantissa) * tl.exp2((exponent - 1).to(tl.float32))
    magnitude = tl.where(exponent == 0, 0.5 * mantissa, normal)
    return tl.where((code & 8) != 0, -magnitude, magnitude)


@triton.jit
def _weight_tile(blocks, scales, expert, n_offs, kb0, N, KB,
                 BLOCK_N: tl.constexpr, BLOCKS_K: tl.constexpr):
    """Decoded weight tile [BLOCK_N, BLOCKS_K * 32] of rows n_offs, 32-blocks kb0.."""
    kb = kb0 + tl.arange(0, BLOCKS_K)
    byte = tl.arange(0, 16)
    mask = (n_offs[:, None, None] < N) & (kb[None, :, None] < KB)
    row = (expert * N + n_offs).to(tl.int64)
    packed = tl.load(blocks + (row[:, None, None] * KB + kb[None, :, None]) * 16 + byte[None, None, :],
                     mask=mask, other=0)
    low = _fp4_to_float(packed & 15)
    high = _fp4_to_float(packed >> 4)
    values = tl.reshape(tl.join(low, high), (BLOCK_N, BLOCKS_K, 32))
    s = tl.load(scales + row[:, None] * KB + kb[None, :],
                mask=(n_offs[:, None] < N) & (kb[None, :] < KB), other=127)
    values = values * tl.exp2(s.to(tl.float32) - 127.0)[:, :, None]
    return tl.reshape(values, (BLOCK_N, BLOCKS_K * 32))


@triton.jit
def _expert_matmul(a_ptr, a_rows, a_stride, row_valid, blocks, scales, expert, n_offs, N, KB,
                   K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCKS_K: tl.constexpr):
    """float32 [BLOCK_M, BLOCK_N] = A[a_rows, :K] @ W[expert][n_offs].T"""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb0 in range(0, KB, BLOCKS_K):
        k = kb0 * 32 + tl.arange(0, BLOCKS_K * 32)
        a = tl.load(a_ptr + a_rows[:, None].to(tl.int64) * a_stride + k[None, :],
                    mask=row_valid[:, None] & (k[None, :] < K), other=0.0)
        w = _weight_tile(blocks, scales, expert, n_offs, kb0, N, KB, BLOCK_N, BLOCKS_K)
        acc += tl.dot(a, tl.trans(w.to(a.dtype)))
    return acc


@triton.jit
def _program_tile(sorted_rows, block_expert, num_rows, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's expert, its BLOCK_M sorted slots, their rows (valid: not padding) and
    its BLOCK_N output columns."""
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    expert = tl.load(block_expert + pid_m)
    slots = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = tl.load(sorted_rows + slots)
    n_offs = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    return expert, slots, rows, rows < num_rows, n_offs


@triton.jit
def _bias(bias, expert, n_offs, N):
    return tl.load(bias + expert * N + n_offs, mask=n_offs < N, other=0.0).to(tl.float32)[None, :]


@triton.jit
def _gate_up_kernel(x, blocks, scales, bias, sorted_rows, block_expert, h,
                    num_rows, top_k, N, KB, K, alpha, limit,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCKS_K: tl.constexpr):
    expert, slots, rows, valid, n_offs = _program_tile(sorted_rows, block_expert, num_rows,
                                                       BLOCK_M, BLOCK_N)
    tokens = tl.where(valid, rows // top_k, 0)              # gather: row -> its token in x
    acc = _expert_matmul(x, tokens, K, valid, blocks, scales, expert, n_offs, N, KB, K,
                         BLOCK_M, BLOCK_N, BLOCKS_K) + _bias(bias, expert, n_offs, N)
    gate, linear = tl.split(tl.reshape(acc, (BLOCK_M, BLOCK_N // 2, 2)))
    gate = tl.minimum(gate, limit)
    linear = tl.minimum(tl.maximum(linear, -limit), limit)
    out = gate * tl.sigmoid(alpha * gate) * (linear + 1.0)
    cols = tl.program_id(1) * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
    tl.store(h + slots[:, None].to(tl.int64) * (N // 2) + cols[None, :], out.to(h.dtype.element_ty),
             mask=valid[:, None] & (cols[None, :] < N // 2))


@triton.jit
def _down_kernel(h, blocks, scales, bias, sorted_rows, block_expert, row_weight, y,
                 num_rows, N, KB, K,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCKS_K: tl.constexpr):
    expert, slots, rows, valid, n_offs = _program_tile(sorted_rows, block_expert, num_rows,
                                                       BLOCK_M, BLOCK_N)
    acc = _expert_matmul(h, slots, K, valid, blocks, scales, expert, n_offs, N, KB, K,
                         BLOCK_M, BLOCK_N, BLOCKS_K) + _bias(bias, expert, n_offs, N)
    acc *= tl.load(row_weight + rows, mask=valid, other=0.0).to(tl.float32)[:, None]
    # scatter: each row goes back to its (token, slot) position
    tl.store(y + rows[:, None].to(tl.int64) * N + n_offs[None, :], acc.to(y.dtype.element_ty),
             mask=valid[:, None] & (n_offs[None, :] < N))


def align(index: torch.Tensor, num_experts: int, block_m: int):
    """index [T, top_k] -> (sorted_rows [P] int32, block_expert [P / block_m] int32).

    sorted_rows lists the flat rows (token * top_k + slot) expert by expert, each expert's run
    padded with the sentinel T * top_k to a multiple of block_m; block_expert names the expert
    of each run of block_m slots. Experts no row chose get no blocks."""
    flat = index.flatten()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_experts)
    padded = (counts + block_m - 1) // block_m * block_m
    start_padded = torch.cumsum(padded, 0) - padded
    start = torch.cumsum(counts, 0) - counts
    experts_sorted = flat[order]
    dest = start_padded[experts_sorted] + torch.arange(flat.numel(), device=flat.device) - start[experts_sorted]
    total = int(padded.sum())
    sorted_rows = torch.full((total,), flat.numel(), dtype=torch.int32, device=flat.device)
    sorted_rows[dest] = order.to(torch.int32)
    block_expert = torch.repeat_interleave(torch.arange(num_experts, device=flat.device),
                                           padded // block_m).to(torch.int32)
    return sorted_rows, block_expert


def moe_experts(x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, experts,
                alpha: float = 1.702, limit: float = 7.0, block_m: int = 16,
                block_n: int = 64, blocks_k: int = 2) -> torch.Tensor:
    """Routed experts: x [T, H], routing weights/index [T, top_k] -> [T, H]."""
    T, H = x.shape
    top_k = index.shape[1]
    E, two_i, kb_h, _ = experts.gate_up_blocks.shape
    I = two_i // 2
    kb_i = experts.down_blocks.shape[2]
    sorted_rows, block_expert = align(index, E, block_m)
    num_rows = T * top_k
    h = torch.empty(sorted_rows.numel(), I, dtype=x.dtype, device=x.device)
    y = torch.empty(num_rows, H, dtype=torch.float32, device=x.device)
    if sorted_rows.numel():
        m_blocks = sorted_rows.numel() // block_m
        _gate_up_kernel[(m_blocks, triton.cdiv(two_i, block_n))](
            x.contiguous(), experts.gate_up_blocks, experts.gate_up_scales,
            experts.gate_up_bias.contiguous(), sorted_rows, block_expert, h,
            num_rows, top_k, two_i, kb_h, H, alpha, limit,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCKS_K=blocks_k)
        _down_kernel[(m_blocks, triton.cdiv(H, block_n))](
            h, experts.down_blocks, experts.down_scales, experts.down_bias.contiguous(),
            sorted_rows, block_expert, weights.contiguous().float(), y,
            num_rows, H, kb_i, I,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCKS_K=blocks_k)
    return y.view(T, top_k, H).sum(1).to(x.dtype)
