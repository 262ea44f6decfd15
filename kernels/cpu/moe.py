"""Mixture of experts on packed MXFP4 weights, for CPU.

Rows (token, slot) are sorted by expert so each selected expert is read once per call:
  * experts chosen by few rows (decode, small batches) go through `moe_mxfp4_gemv`, which
    decodes the 4-bit weights in registers: the bytes stream from memory once and no bf16 copy
    of any expert ever exists (for <= 8 rows the whole block, routing included, is one C++
    call, `moe_decode`);
  * experts chosen by many rows (prefill) are dequantized to bf16 in tiles of rows that stay in
    the L3 cache and multiplied with torch's bf16 matmul (oneDNN: AMX where the CPU has it,
    AVX512_BF16 on the development machine), which is compute-bound there anyway. On AVX2
    CPUs (no fast bf16 matmul in torch) every expert takes the GEMV, whose int8 arithmetic
    outruns a float32 matmul at any row count.
Accumulation is float32; the clamped SwiGLU runs on the float32 gate/up outputs (one AVX-512
pass that also rounds to bf16 for the down projection).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import reference
from .build import extension
from .dense import linear

GEMV_MAX_ROWS = 8    # above this many rows per expert, dequantize + matmul is faster
# ... except on AVX2, where the int8 GEMV (decoded weights reused across rows in registers)
# beats a float32 matmul that must first widen each weight tile to 4 bytes (measured: ~32 G
# multiply-adds per core-second at 8 rows, as many as sgemm reaches only at 512 rows)
AVX2_GEMV_MAX_ROWS = 1 << 30
TILE_ROWS = 1024     # output rows dequantized at once (2880 * 1024 bf16 = 5.9 MB, in L3)


def _padded_bf16(x: torch.Tensor, width: int) -> torch.Tensor:
    """x [R, K] -> contiguous bf16 [R, width] (zero padding up to whole 32-blocks)."""
    x = x.to(torch.bfloat16)
    if x.shape[1] != width:
        x = F.pad(x, (0, width - x.shape[1]))
    return x.contiguous()


def _matmul_dequantized(ext, x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor,
                        bias: torch.Tensor) -> torch.Tensor:
    """x [R, K] bf16 @ dequantize(blocks, scales).T + bias, tile by tile -> float32 [R, N]."""
    n = blocks.shape[0]
    out = torch.empty(x.shape[0], n, dtype=torch.float32)
    for start in range(0, n, TILE_ROWS):
        w = ext.mxfp4_dequantize_bf16(blocks[start:start + TILE_ROWS],
                                      scales[start:start + TILE_ROWS])
        out[:, start:start + TILE_ROWS] = x @ w.t()
    return out.add_(bias.float())


def _expert_linear(ext, x, blocks, scales, bias, experts, offsets, counts):
    """Grouped linear layer: rows x[offsets[g]:offsets[g+1]] use expert experts[g]."""
    width = blocks.shape[2] * 32
    x = _padded_bf16(x, width)
    small = counts <= (AVX2_GEMV_MAX_ROWS if ext.isa == "avx2" else GEMV_MAX_ROWS)
    if bool(small.all()):
        return ext.moe_mxfp4_gemv(x, blocks, scales, bias, experts, offsets)
    out = torch.empty(x.shape[0], blocks.shape[1], dtype=torch.float32)
    few = small.nonzero().flatten()
    if len(few):  # gather the lightly used experts' rows into one GEMV call
        rows = torch.cat([torch.arange(offsets[g], offsets[g + 1]) for g in few.tolist()])
        sub_offsets = torch.cat((counts.new_zeros(1), counts[few].cumsum(0)))
        out[rows] = ext.moe_mxfp4_gemv(x[rows].contiguous(), blocks, scales, bias,
                                       experts[few].contiguous(), sub_offsets)
    for g in (~small).nonzero().flatten().tolist():
        e, a, b = int(experts[g]), int(offsets[g]), int(offsets[g + 1])
        out[a:b] = _matmul_dequantized(ext, x[a:b], blocks[e], scales[e], bias[e])
    return out


def moe(x: torch.Tensor, router_weight: torch.Tensor, router_bias: torch.Tensor, experts,
        top_k: int, alpha: float = 1.702, limit: float = 7.0) -> torch.Tensor:
    """Same contract as agent.kernels.reference.moe (x [N, H] -> [N, H])."""
    blocks = getattr(experts, "gate_up_blocks", None)
    # The kernels compute with bf16 activations: float32 models (small ones) keep the reference
    # and never build the extension.
    ext = None if blocks is None or x.dtype != torch.bfloat16 or x.requires_grad else extension()
    if ext is None:
        return reference.moe(x, router_weight, router_bias, experts, top_k, alpha, limit)
    if (x.shape[0] * top_k <= GEMV_MAX_ROWS and blocks.shape[1] % 32 == 0
            and x.shape[1] % 32 == 0 and router_weight.dtype == router_bias.dtype == torch.bfloat16):
        # decode: routing and the steps of `routed_experts` in one C++ call (no per-op overhead)
        return ext.moe_decode(x.contiguous(), router_weight, router_bias, top_k,
                              experts.gate_up_blocks, experts.gate_up_scales, experts.gate_up_bias,
                              experts.down_blocks, experts.down_scales, experts.down_bias,
                              alpha, limit)
    weights, index = route(x, router_weight, router_bias, top_k)
    return routed_experts(ext, x, weights, index, experts, alpha, limit)


def route(x, router_weight, router_bias, top_k):
    """reference.route with the logits from `linear`: for decode rows torch's matmul spends
    ~0.1 ms on this 32 x H product (a mapped, unaligned weight), the GEMV a few microseconds."""
    return reference.select_experts(
        linear(x, router_weight.to(x.dtype), router_bias.to(x.dtype)), top_k)


def routed_experts(ext, x, weights, index, experts, alpha, limit):
    """x [N, H] through each row's experts index [N, top_k], weighted by weights [N, top_k]."""
    flat = index.flatten()
    order = torch.argsort(flat, stable=True)
    used, counts = torch.unique_consecutive(flat[order], return_counts=True)
    offsets = torch.cat((counts.new_zeros(1), counts.cumsum(0)))
    token = order // index.shape[1]
    h = _expert_linear(ext, x[token], experts.gate_up_blocks, experts.gate_up_scales,
                       experts.gate_up_bias, used, offsets, counts)
    width = experts.down_blocks.shape[2] * 32
    if h.shape[1] % 32 == 0 and width % 16 == 0:  # fused: float32 gate/up -> padded bf16
        h = ext.swiglu_bf16(h, alpha, limit, width)
    else:
        h = reference.swiglu(h, alpha, limit)
    y = _expert_linear(ext, h, experts.down_blocks, experts.down_scales, experts.down_bias,
                       used, offsets, counts)
    y = y * weights.flatten()[order].float()[:, None]
    out = torch.zeros(x.shape[0], y.shape[1], dtype=torch.float32).index_add_(0, token, y)
    return out.to(x.dtype)
