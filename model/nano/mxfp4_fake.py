"""MXFP4 (OCP microscaling FP4 E2M1, blocks of 32 along the last axis, e8m0 scales) for the
nano trainer: quantize to the checkpoint's packed form, and fake-quantize with a
straight-through gradient so training sees the exact weights the runtime will use.
"""
from __future__ import annotations

import torch

FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                           -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
_MAGNITUDES = FP4_VALUES[:8]


def _codes_and_exponents(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [..., K] (K % 32 == 0) -> 4-bit codes [..., K] and block exponents [..., K/32]."""
    if w.shape[-1] % 32:
        raise ValueError(f"MXFP4 needs the last dimension to be a multiple of 32, got {w.shape}")
    blocks = w.detach().float().reshape(*w.shape[:-1], -1, 32)
    amax = blocks.abs().amax(-1).clamp(min=2.0 ** -126)
    # smallest power of two that keeps the block's largest value within +-6 (no clipping)
    exponent = torch.ceil(torch.log2(amax / 6.0)).clamp(-127, 127)
    scaled = blocks / torch.exp2(exponent)[..., None]
    index = (scaled.abs()[..., None] - _MAGNITUDES).abs().argmin(-1)
    codes = index + 8 * (scaled < 0)
    return codes.reshape(w.shape), exponent


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [..., K] -> (blocks uint8 [..., K/32, 16], scales uint8 [..., K/32] biased by 127)."""
    codes, exponent = _codes_and_exponents(w)
    codes = codes.reshape(*w.shape[:-1], -1, 16, 2).to(torch.uint8)
    blocks = codes[..., 0] | (codes[..., 1] << 4)  # even element in the low nibble
    return blocks, (exponent + 127).to(torch.uint8)


def dequantize(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of `quantize`: float32 [..., K]."""
    low, high = (blocks & 0x0F).long(), (blocks >> 4).long()
    values = torch.stack([FP4_VALUES[low], FP4_VALUES[high]], dim=-1).flatten(-2)
    values = values * torch.exp2(scales.float() - 127)[..., None]
    return values.flatten(-2)


def fake_quantize(w: torch.Tensor) -> torch.Tensor:
    """The MXFP4-rounded weights in the forward pass, identity gradient in the backward."""
    codes, exponent = _codes_and_exponents(w)
    rounded = (FP4_VALUES[codes].reshape(*w.shape[:-1], -1, 32)
               * torch.exp2(exponent)[..., None]).reshape(w.shape)
    return w + (rounded - w).detach()
