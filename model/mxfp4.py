"""MXFP4, the format of gpt-oss expert weights (OCP Microscaling, E2M1 elements, E8M0 scales).

A weight [out, in] is cut along `in` into blocks of 32 values. Each block stores
  * 32 FP4 E2M1 codes, two per byte (value 2j in the low nibble of byte j, 2j+1 in the high),
    as uint8 [..., in/32, 16]; code -> value via FP4_VALUES (bit 3 = sign);
  * one shared scale byte s (uint8 [..., in/32]) meaning 2 ** (s - 127).
value = FP4_VALUES[code] * 2 ** (s - 127).

`dequantize` is the reference kernel's (agent.kernels.reference.dequantize_mxfp4, re-exported
here so the kernels layer needs nothing from the model layer); `quantize` is its inverse up to
rounding: dequantize(*quantize(dequantize(b, s))) == dequantize(b, s).
"""
from __future__ import annotations

import torch

from agent.kernels.reference import BLOCK, FP4_VALUES, SCALE_BIAS
from agent.kernels.reference import dequantize_mxfp4 as dequantize

__all__ = ["FP4_VALUES", "BLOCK", "SCALE_BIAS", "quantize", "dequantize"]

_MAGNITUDES = torch.tensor(FP4_VALUES[:8], dtype=torch.float32)  # codes 0..7
_MAX = 6.0


def _quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [R, G, 32] float32 -> blocks [R, G, 16] uint8, scales [R, G] uint8."""
    amax = w.abs().amax(dim=-1)
    # Smallest exponent that fits the block's largest magnitude under 6 (the largest code).
    exponent = torch.ceil(torch.log2(amax.clamp_min(2.0 ** -126) / _MAX))
    exponent = exponent.clamp(-SCALE_BIAS, 255 - SCALE_BIAS)
    scaled = w / torch.exp2(exponent).unsqueeze(-1)
    # Nearest magnitude (ties go to the smaller code), sign in bit 3.
    distance = (scaled.abs().unsqueeze(-1) - _MAGNITUDES.to(w.device)).abs()
    codes = distance.argmin(dim=-1).to(torch.uint8)
    codes = codes | (torch.signbit(scaled) & (codes > 0)).to(torch.uint8) << 3
    pairs = codes.view(*codes.shape[:-1], BLOCK // 2, 2)
    blocks = pairs[..., 0] | (pairs[..., 1] << 4)
    scales = (exponent + SCALE_BIAS).to(torch.uint8)
    return blocks, scales


def quantize(w: torch.Tensor, rows_per_chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """w [..., in] (in divisible by 32) -> (blocks [..., in/32, 16] uint8, scales [..., in/32]
    uint8). Works in row chunks so a large expert tensor never needs a float32 copy at once."""
    *prefix, width = w.shape
    if width % BLOCK:
        raise ValueError(f"mxfp4: last dimension {width} is not a multiple of {BLOCK}")
    rows = w.reshape(-1, width // BLOCK, BLOCK)
    blocks = torch.empty(rows.shape[0], width // BLOCK, BLOCK // 2, dtype=torch.uint8,
                         device=w.device)
    scales = torch.empty(rows.shape[0], width // BLOCK, dtype=torch.uint8, device=w.device)
    for start in range(0, rows.shape[0], rows_per_chunk):
        end = start + rows_per_chunk
        blocks[start:end], scales[start:end] = _quantize_rows(rows[start:end].float())
    return (blocks.view(*prefix, width // BLOCK, BLOCK // 2),
            scales.view(*prefix, width // BLOCK))
