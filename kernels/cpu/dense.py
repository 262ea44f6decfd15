"""Dense linear layers on CPU: bf16 or int8 weights (agent.kernels.linear).

A decode step multiplies one (or a few) rows by every dense matrix: pure streaming, where
torch's bf16 matmul leaves bandwidth unused. Few rows go through the C++ GEMV kernels
(bf16: vdpbf16ps; int8: int16 activations and vpmaddwd with per-32 float16 scales; register
tiles of several weight rows and activation rows); many rows (prefill)
go to torch's matmul for bf16 weights, and to the int8 GEMM (int8 activations per 32-block,
vpdpbusd) for int8 ones; with AMX tiles, int8 weights are dequantized to bf16 a tile of rows
at a time for oneDNN instead. On AVX2 CPUs
(the kernels' "avx2" variant) torch's bf16 matmul has no fast path (~11 GFLOPS against ~78 in
float32 on two EPYC cores), so there many rows multiply float32 tiles of the weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import reference
from .build import extension, has_amx

BF16_GEMV_MAX_ROWS = 8   # the GEMV's tiles beat torch's matmul 1.1-1.5x up to 8 rows; at 12 it loses
AVX2_GEMV_MAX_ROWS = 16  # on AVX2 the float32 matmul must first widen the weights: GEMV longer
INT8_GEMV_MAX_ROWS = 8
TILE_ROWS = 4096         # int8 rows dequantized at once for many-row inputs


def linear(x: torch.Tensor, weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract as agent.kernels.reference.linear."""
    K = x.shape[-1]
    rows = x.numel() // K if K else 0
    dense = isinstance(weight, torch.Tensor)
    if x.requires_grad or K % 32 or rows == 0 or dense and (
            weight.dtype != torch.bfloat16 or not weight.is_contiguous()):
        return reference.linear(x, weight, bias)
    # Built only when a kernel will run: float32 (small) models never pay the first-use compile.
    ext = extension()
    gemv_rows = AVX2_GEMV_MAX_ROWS if ext is not None and ext.isa == "avx2" else BF16_GEMV_MAX_ROWS
    if ext is None or dense and rows > gemv_rows and ext.isa != "avx2":
        return reference.linear(x, weight, bias)
    flat = x.reshape(rows, K)
    # the GEMVs add the bias and round to bf16 as they store: no torch op after them
    bias = None if bias is None else bias.contiguous()
    to_bf16 = x.dtype == torch.bfloat16
    if dense and rows <= gemv_rows:
        out = ext.bf16_gemv(flat.to(torch.bfloat16).contiguous(), weight, bias, to_bf16)
    elif not dense and (rows <= INT8_GEMV_MAX_ROWS or not has_amx()):
        xs = flat if flat.dtype == torch.bfloat16 else flat.float()  # bf16 widens in the kernel
        product = ext.int8_gemv if rows <= INT8_GEMV_MAX_ROWS else ext.int8_gemm
        out = product(xs.contiguous(), weight.q, weight.scales, weight.unit, bias, to_bf16)
    else:  # many rows: tiles of the weights in the matmul's fast dtype
        fast = torch.float32 if ext.isa == "avx2" else torch.bfloat16
        out = torch.empty(rows, weight.shape[0], dtype=torch.float32)
        a = flat.to(fast)
        for start in range(0, weight.shape[0], TILE_ROWS):
            tile = weight[start:start + TILE_ROWS].to(fast)
            out[:, start:start + TILE_ROWS] = a @ tile.t()
        if bias is not None:
            out += bias.float()
    return out.to(x.dtype).view(*x.shape[:-1], out.shape[-1])
