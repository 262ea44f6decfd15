"""The small interface the model calls for its heavy operations.

Every function here dispatches, by the device of its first tensor, to the first
implementation that provides it:

    cpu:   agent.kernels.cpu     -> agent.kernels.reference
    cuda:  agent.kernels.triton  -> agent.kernels.reference

An implementation module is used only if it imports cleanly and defines a function of the same
name with the same signature; anything it lacks falls back to the pure-torch reference
(`agent.kernels.reference`, the definition of correct). `GPT_OSS_AGENT_KERNELS=reference` in the
environment, or a `with reference_kernels():` block, forces the reference everywhere.

Shapes (B batch rows, T tokens, H hidden, Hq/Hkv query/key-value heads, D head dim,
E experts, I expert width):

    rms_norm(x [..., H], weight [H], eps) -> [..., H]
    rope(x [B, T, heads, D], cos [B, T, D/2], sin [B, T, D/2]) -> same as x
        half-split rotation: pairs (i, i + D/2). cos/sin come from rope_tables(positions,
        *yarn_frequencies(...)) and already include YaRN's concentration.
    attention(q [B, Tq, Hq, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, D], sinks [Hq],
              q_positions [B, Tq] int64, k_offset: int, window: int | None, scale: float)
        -> [B, Tq, Hq, D]. Key slot j is position k_offset + j; a query at position p sees
        keys p - window < j <= p (all j <= p when window is None). One learned sink logit per
        head joins the softmax. Query head h uses kv head h // (Hq // Hkv).
    packed_cache(dtype, device_type, D) -> bool; store_packed(keys, values, k, v, positions);
    attention_packed(q, keys, values, sinks, q_positions, length, window, scale): the same
        attention over a KV cache in the attention kernel's packed layouts (reference.py),
        slot j = position j, the slots [0, length) written.
    swiglu(x [..., 2I], alpha, limit) -> [..., I]   gate = x[..., ::2], linear = x[..., 1::2]
    moe(x [N, H], router_weight [E, H], router_bias [E], experts, top_k, alpha, limit) -> [N, H]
        top_k experts per token by router logit, softmax over the selected logits, clamped
        SwiGLU experts with biases; `experts` is a PackedExperts (MXFP4, the normal case) or
        a DenseExperts. Implementations read experts' fields directly; they must never
        materialise all experts in a wider dtype (only the ones tokens selected).
    linear(x [..., K], weight, bias [N] | None) -> [..., N]   weight: a tensor [N, K] or an
        Int8Weight (8-bit dense mode); the CPU path streams few-row inputs (decode) through
        its own GEMV kernels.
"""
from __future__ import annotations

if __name__ != "agent.kernels":  # run from the repo root as `kernels`: see agent/shadowing.py
    from agent.shadowing import stand_aside
    stand_aside(__name__)

import importlib
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch

from agent.kernels.reference import dequantize_int8, quantize_int8  # noqa: F401 (re-export)
from agent.kernels.reference import dequantize_mxfp4, rope_tables, yarn_frequencies  # noqa: F401 (re-export)

_CHAINS = {
    "cpu": ("agent.kernels.cpu", "agent.kernels.reference"),
    "cuda": ("agent.kernels.triton", "agent.kernels.reference"),
}


@dataclass
class PackedExperts:
    """One layer's experts in the checkpoint's MXFP4 layout (HF names in brackets).

    gate_up_blocks [E, 2I, H/32, 16] uint8  (gate_up_proj_blocks; rows interleave gate, linear)
    gate_up_scales [E, 2I, H/32]     uint8  (gate_up_proj_scales; e8m0, bias 127)
    gate_up_bias   [E, 2I]                  (gate_up_proj_bias)
    down_blocks    [E, H, I/32, 16]  uint8  (down_proj_blocks)
    down_scales    [E, H, I/32]      uint8  (down_proj_scales)
    down_bias      [E, H]                   (down_proj_bias)
    Weights are [out, in] (F.linear orientation), quantized along `in` in blocks of 32.
    """
    gate_up_blocks: torch.Tensor
    gate_up_scales: torch.Tensor
    gate_up_bias: torch.Tensor
    down_blocks: torch.Tensor
    down_scales: torch.Tensor
    down_bias: torch.Tensor

    @property
    def num_experts(self) -> int:
        return self.gate_up_blocks.shape[0]

    def gate_up(self, e: int, dtype: torch.dtype) -> torch.Tensor:
        """Expert e's gate/up weight [2I, H], dequantized."""
        return dequantize_mxfp4(self.gate_up_blocks[e], self.gate_up_scales[e], dtype)

    def down(self, e: int, dtype: torch.dtype) -> torch.Tensor:
        """Expert e's down weight [H, I], dequantized."""
        return dequantize_mxfp4(self.down_blocks[e], self.down_scales[e], dtype)


@dataclass
class DenseExperts:
    """Experts as plain tensors (training, or small models where speed beats memory).
    gate_up_weight [E, 2I, H], gate_up_bias [E, 2I], down_weight [E, H, I], down_bias [E, H]."""
    gate_up_weight: torch.Tensor
    gate_up_bias: torch.Tensor
    down_weight: torch.Tensor
    down_bias: torch.Tensor

    @property
    def num_experts(self) -> int:
        return self.gate_up_weight.shape[0]

    def gate_up(self, e: int, dtype: torch.dtype) -> torch.Tensor:
        return self.gate_up_weight[e].to(dtype)

    def down(self, e: int, dtype: torch.dtype) -> torch.Tensor:
        return self.down_weight[e].to(dtype)


@dataclass
class Int8Weight:
    """A dense weight [N, K] in 8 bits: q int8 [N, K] and one float16 scale per 32 weights of a
    row (scales [N, K/32], in units of `unit`: 1.0625 bytes a weight, as llama.cpp's Q8_0);
    `dtype` is what it dequantizes to. Indexing rows (`weight[ids]`) dequantizes just those
    rows, so an int8 embedding table is used like a tensor."""
    q: torch.Tensor
    scales: torch.Tensor
    unit: float = 1.0
    dtype: torch.dtype = torch.bfloat16

    @classmethod
    def quantize(cls, w: torch.Tensor) -> "Int8Weight":
        return cls(*quantize_int8(w), dtype=w.dtype)

    @property
    def shape(self) -> torch.Size:
        return self.q.shape

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return dequantize_int8(self.q, self.scales, self.unit, dtype or self.dtype)

    def __getitem__(self, rows) -> torch.Tensor:
        return dequantize_int8(self.q[rows], self.scales[rows], self.unit, self.dtype)


_reference_only = os.environ.get("GPT_OSS_AGENT_KERNELS", "").strip().lower() == "reference"


@contextmanager
def reference_kernels():
    """Within this block every op runs the pure-torch reference (tests of the model itself)."""
    global _reference_only
    saved, _reference_only = _reference_only, True
    implementation.cache_clear()
    try:
        yield
    finally:
        _reference_only = saved
        implementation.cache_clear()


@lru_cache(maxsize=None)
def implementation(name: str, device_type: str):
    """The function `name` for tensors on `device_type` (see the module docstring)."""
    chain = _CHAINS.get(device_type, ("agent.kernels.reference",))
    if _reference_only:
        chain = ("agent.kernels.reference",)
    for module_name in chain:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a fast path that cannot build or import is skipped
            _skipped(module_name, f"{type(exc).__name__}: {exc}")
            continue
        function = getattr(module, name, None)
        if callable(function):
            return function
    raise NotImplementedError(f"no kernel implements {name!r} for {device_type}")


@lru_cache(maxsize=None)
def _skipped(module_name: str, why: str) -> None:
    """Say once why a fast path is not used (on CUDA: triton comes with the `gpu` extra)."""
    logging.getLogger(__name__).warning("%s unavailable (%s); using the next implementation",
                                        module_name, why)


def rms_norm(x, weight, eps):
    return implementation("rms_norm", x.device.type)(x, weight, eps)


def rope(x, cos, sin):
    return implementation("rope", x.device.type)(x, cos, sin)


def attention(q, k, v, sinks, q_positions, k_offset=0, window=None, scale=None):
    return implementation("attention", q.device.type)(q, k, v, sinks, q_positions, k_offset,
                                                      window, scale)


def packed_cache(dtype, device_type: str, head_dim: int) -> bool:
    """Whether a KV cache of this dtype on this device should hold the packed layouts
    (reference.py), which store_packed writes and attention_packed reads as they are."""
    return implementation("packed_cache", device_type)(dtype, head_dim)


def store_packed(keys, values, k, v, positions):
    implementation("store_packed", k.device.type)(keys, values, k, v, positions)


def attention_packed(q, keys, values, sinks, q_positions, length, window=None, scale=None):
    return implementation("attention_packed", q.device.type)(q, keys, values, sinks, q_positions,
                                                             length, window, scale)


def swiglu(x, alpha=1.702, limit=7.0):
    return implementation("swiglu", x.device.type)(x, alpha, limit)


def moe(x, router_weight, router_bias, experts, top_k, alpha=1.702, limit=7.0):
    return implementation("moe", x.device.type)(x, router_weight, router_bias, experts, top_k,
                                                alpha, limit)


def linear(x, weight, bias=None):
    return implementation("linear", x.device.type)(x, weight, bias)
