"""Fake MXFP4 quantization for the nano trainer: the forward pass sees exactly the weights
the exported checkpoint will hold (agent.model.mxfp4's rounding), the backward pass treats
the rounding as identity (straight-through estimator)."""
from __future__ import annotations

import torch

from agent.model import mxfp4


def fake_quantize(w: torch.Tensor) -> torch.Tensor:
    rounded = mxfp4.dequantize(*mxfp4.quantize(w.detach()))
    return w + (rounded - w).detach()
