"""RMSNorm and RoPE on CPU: one C++ call each for bf16 activations (norm_rope.cpp).

Neither is heavy; in decode each replaced ~8 small torch ops (a dispatch and an allocation
each), four times per layer and token. float32 (small) models and autograd keep the reference.
"""
from __future__ import annotations

import torch

from .. import reference
from .build import extension


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Same contract as agent.kernels.reference.rms_norm."""
    if (x.dtype != torch.bfloat16 or x.requires_grad or x.shape[-1] % 16
            or weight.dtype != torch.float32 or (ext := extension()) is None):
        return reference.rms_norm(x, weight, eps)
    return ext.rms_norm_bf16(x.contiguous(), weight.contiguous(), float(eps))


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Same contract as agent.kernels.reference.rope."""
    if (x.dtype != torch.bfloat16 or x.requires_grad or x.dim() != 4 or x.shape[-1] % 32
            or cos.dtype != torch.float32 or (ext := extension()) is None):
        return reference.rope(x, cos, sin)
    return ext.rope_bf16(x.contiguous(), cos.contiguous(), sin.contiguous())
