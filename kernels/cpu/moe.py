"""Mixture of experts on packed MXFP4 weights, for CPU.

Rows (token, slot) are sorted by expert so each selected expert is read once per call, and
every product runs on the packed 4-bit weights (mxfp4_int8.cpp: int8 activations per
32-block, int8 dot products; no bf16 copy of an expert exists):
  * experts chosen by few rows (decode, small batches) go through `moe_mxfp4_gemv`, which
    streams the packed bytes once (for <= 8 rows in all the whole block, routing included,
    is one C++ call, `moe_decode`);
  * experts chosen by many rows (prefill) go through `moe_mxfp4_gemm`, which decodes a tile of
    columns once and multiplies every row with it (vpdpbusd: twice the multiply-adds per
    instruction of bf16). On CPUs with AMX tiles, oneDNN's bf16 matmul on dequantized tiles
    is faster still, so there such experts take that path; on AVX2 the GEMV does as well as
    the GEMM at any row count, so it takes them all.
Accumulation is float32; the clamped SwiGLU runs on the float32 gate/up outputs (one pass that
also rounds to bf16 for the down projection).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import reference
from .build import extension, has_amx
from .dense import linear

DECODE_MAX_ROWS = 8  # rows (tokens x top_k) up to which routing and experts are one C++ call
# Rows per expert above which the GEMM beats the GEMV (2-core EPYC, 20b gate_up, GFLOP/s
# GEMV / GEMM: 16 rows 196 / 140, 64 rows 227 / 317-400; dequantize + bf16 matmul 236-282)
GEMV_MAX_ROWS = 24
# ... on AVX2 the GEMV matches the GEMM even at 64 rows (172 / 163), and beats a float32
# matmul that must first widen each weight tile to 4 bytes
AVX2_GEMV_MAX_ROWS = 1 << 30
AMX_GEMV_MAX_ROWS = 8  # with AMX tiles, oneDNN's bf16 matmul wins earlier (session 3's measure)
TILE_ROWS = 1024     # output rows dequantized at once for AMX (2880 * 1024 bf16 = 5.9 MB, in L3)


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


def gemv_max_rows(ext) -> int:
    """Rows per expert up to which the GEMV serves them on this CPU."""
    return AVX2_GEMV_MAX_ROWS if ext.isa == "avx2" else AMX_GEMV_MAX_ROWS if has_amx() else GEMV_MAX_ROWS


def _expert_linear(ext, x, blocks, scales, bias, experts, offsets, counts):
    """Grouped linear layer: rows x[offsets[g]:offsets[g+1]] use expert experts[g]."""
    x = _padded_bf16(x, blocks.shape[2] * 32)
    small = counts <= gemv_max_rows(ext)
    parts = [(small, ext.moe_mxfp4_gemv), (~small, None if has_amx() else ext.moe_mxfp4_gemm)]
    parts = [(which, product) for which, product in parts if bool(which.any())]
    if len(parts) == 1 and parts[0][1] is not None:  # one kind of expert: no gathering
        return parts[0][1](x, blocks, scales, bias, experts, offsets)
    out = torch.empty(x.shape[0], blocks.shape[1], dtype=torch.float32)
    for which, product in parts:
        groups = which.nonzero().flatten().tolist()
        if product is None:  # AMX: oneDNN's bf16 matmul per expert
            for g in groups:
                e, a, b = int(experts[g]), int(offsets[g]), int(offsets[g + 1])
                out[a:b] = _matmul_dequantized(ext, x[a:b], blocks[e], scales[e], bias[e])
            continue
        rows = torch.cat([torch.arange(offsets[g], offsets[g + 1]) for g in groups])
        sub_offsets = torch.cat((counts.new_zeros(1), counts[groups].cumsum(0)))
        out[rows] = product(x[rows].contiguous(), blocks, scales, bias, experts[groups].contiguous(),
                            sub_offsets)
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
    if (x.shape[0] * top_k <= DECODE_MAX_ROWS and blocks.shape[1] % 32 == 0
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
