"""Pure-torch kernels: the definition of correct for every other implementation.

Everything here is plain differentiable torch (the trainer of the embedded model reuses it),
written for clarity rather than speed. Shapes follow `agent.kernels` (see its docstring).
The only non-differentiable inputs are the packed MXFP4 expert weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# FP4 E2M1 code -> value. Bit 3 is the sign, bits 2..0 index the magnitudes below.
FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
              -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
SCALE_BIAS = 127  # e8m0 scale byte s means 2 ** (s - 127)
BLOCK = 32        # values that share one scale; packed two per byte -> 16 bytes


def dequantize_mxfp4(blocks: torch.Tensor, scales: torch.Tensor,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 blocks [..., G, 16] + uint8 scales [..., G] -> values [..., G * 32].

    Byte j of a block holds value 2j in its low nibble and value 2j+1 in its high nibble.
    """
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != BLOCK // 2:
        raise ValueError(f"mxfp4 blocks {tuple(blocks.shape)} do not match scales {tuple(scales.shape)}")
    values = _byte_table(blocks.device)[blocks.int()].flatten(-2)        # [..., G, 32]
    # Multiplying by an exact power of two keeps the result exact (as torch.ldexp does).
    values = values.mul_(torch.exp2(scales.float() - SCALE_BIAS).unsqueeze(-1))
    return values.flatten(-2).to(dtype)


_BYTE_TABLES: dict[torch.device, torch.Tensor] = {}


def _byte_table(device: torch.device) -> torch.Tensor:
    """[256, 2] float32: a byte -> (value of its low nibble, value of its high nibble)."""
    if device not in _BYTE_TABLES:
        lut = torch.tensor(FP4_VALUES, dtype=torch.float32)
        byte = torch.arange(256)
        _BYTE_TABLES[device] = torch.stack((lut[byte & 0x0F], lut[byte >> 4]), dim=-1).to(device)
    return _BYTE_TABLES[device]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x * weight / rms(x), computed in float32, returned in x's dtype."""
    t = x.float()
    t = t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * t).to(x.dtype)


def yarn_frequencies(head_dim: int, theta: float, factor: float = 1.0,
                     original_context: int = 4096, beta_fast: float = 32.0,
                     beta_slow: float = 1.0, truncate: bool = False) -> tuple[torch.Tensor, float]:
    """RoPE inverse frequencies [head_dim/2] with YaRN "NTK by parts", and the concentration
    (attention temperature) that multiplies cos and sin. factor <= 1 gives plain RoPE."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
    base_freq = theta ** exponents
    if factor <= 1.0:
        return 1.0 / base_freq, 1.0
    concentration = 0.1 * math.log(factor) + 1.0

    # Dimension at which a frequency makes `rotations` turns over the original context.
    def dim_for(rotations: float) -> float:
        return head_dim * math.log(original_context / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = dim_for(beta_fast), dim_for(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: high-frequency dims keep their frequency; 0: interpolate by factor
    inv_freq = (1.0 / (factor * base_freq)) * (1 - keep) + (1.0 / base_freq) * keep
    return inv_freq, concentration


def rope_tables(positions: torch.Tensor, inv_freq: torch.Tensor,
                concentration: float) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [...] (int) -> cos, sin [..., head_dim/2] in float32."""
    angles = positions.float()[..., None] * inv_freq.to(positions.device, torch.float32)
    return angles.cos() * concentration, angles.sin() * concentration


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, heads, D] by cos/sin [B, T, D/2]; pairs are (i, i + D/2)."""
    cos = cos.unsqueeze(-2).to(x.dtype)
    sin = sin.unsqueeze(-2).to(x.dtype)
    first, second = x.chunk(2, dim=-1)
    return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor,
              q_positions: torch.Tensor, k_offset: int = 0, window: int | None = None,
              scale: float | None = None) -> torch.Tensor:
    """Causal GQA attention with a learned sink logit per head.

    q [B, Tq, Hq, D]; k, v [B, Tk, Hkv, D] where key slot j holds position k_offset + j;
    q_positions [B, Tq]. Query at position p sees keys at positions p - window < j <= p
    (window None: all j <= p). The sink joins the softmax and then is dropped, so a head may
    attend to "nothing". Returns [B, Tq, Hq, D] in q's dtype.
    """
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    group = Hq // Hkv
    scale = D ** -0.5 if scale is None else scale
    qg = q.float().view(B, Tq, Hkv, group, D)
    scores = torch.einsum("bqhgd,bkhd->bhgqk", qg, k.float()) * scale
    k_pos = torch.arange(Tk, device=q.device) + k_offset
    q_pos = q_positions[:, :, None]                       # [B, Tq, 1]
    visible = k_pos[None, None, :] <= q_pos
    if window is not None:
        visible = visible & (k_pos[None, None, :] > q_pos - window)
    scores = scores.masked_fill(~visible[:, None, None], float("-inf"))
    sink = sinks.float().view(1, Hkv, group, 1, 1).expand(B, Hkv, group, Tq, 1)
    # softmax subtracts the row max itself (a separate max would only cost autograd time)
    probs = torch.cat((scores, sink), dim=-1).softmax(dim=-1)[..., :-1]
    out = torch.einsum("bhgqk,bkhd->bqhgd", probs, v.float())
    return out.reshape(B, Tq, Hq, D).to(q.dtype)


# A KV cache in the attention kernel's packed layouts (kernels.packed_cache says when one is
# used): keys [B, Hkv, S/16, D/2, 16, 2] (a group of 16 positions holds each pair of head dims
# of the 16 keys together), values [B, Hkv, S/2, D, 2] (each head dim of two consecutive
# positions together), for S slots; slot j is position j.

def packed_cache(dtype: torch.dtype, head_dim: int) -> bool:
    return False  # the reference keeps caches position-major; it reads packed ones all the same


def unpack_cache(keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A packed cache as position-major [B, S, Hkv, D] keys and values (views where possible)."""
    B, H, groups, half, G, _ = keys.shape
    k = keys.permute(0, 2, 4, 1, 3, 5).reshape(B, groups * G, H, half * 2)
    v = values.permute(0, 2, 4, 1, 3).reshape(B, values.shape[2] * 2, H, values.shape[3])
    return k, v


def store_packed(keys: torch.Tensor, values: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 positions: torch.Tensor) -> None:
    """Writes k, v [B, T, Hkv, D] at positions [B, T] into a packed cache."""
    B, T, H, D = k.shape
    rows = torch.arange(B, device=k.device)[:, None]
    keys[rows, :, positions // 16, :, positions % 16] = k.reshape(B, T, H, D // 2, 2).to(keys.dtype)
    values[rows, :, positions // 2, :, positions % 2] = v.to(values.dtype)


def attention_packed(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     sinks: torch.Tensor, q_positions: torch.Tensor, length: int,
                     window: int | None = None, scale: float | None = None) -> torch.Tensor:
    """`attention` over the first `length` slots of a packed cache."""
    k, v = unpack_cache(keys, values)
    return attention(q, k[:, :length], v[:, :length], sinks, q_positions, 0, window, scale)


def swiglu(x: torch.Tensor, alpha: float = 1.702, limit: float = 7.0) -> torch.Tensor:
    """Clamped SwiGLU on interleaved [..., 2I] (gate at even, linear at odd) -> [..., I]."""
    gate, linear = x[..., 0::2], x[..., 1::2]
    gate = gate.clamp(max=limit)
    linear = linear.clamp(min=-limit, max=limit)
    return gate * torch.sigmoid(alpha * gate) * (linear + 1)


def route(x: torch.Tensor, router_weight: torch.Tensor, router_bias: torch.Tensor,
          top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Router: top_k experts per token, softmax over the selected logits.
    x [N, H] -> (weights [N, top_k], expert indices [N, top_k])."""
    return select_experts(F.linear(x, router_weight.to(x.dtype), router_bias.to(x.dtype)), top_k)


def select_experts(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Router logits [N, E] -> (softmax over the top_k logits, their expert indices)."""
    top, index = torch.topk(logits, top_k, dim=-1, sorted=True)
    return top.softmax(dim=-1), index


def moe(x: torch.Tensor, router_weight: torch.Tensor, router_bias: torch.Tensor, experts,
        top_k: int, alpha: float = 1.702, limit: float = 7.0) -> torch.Tensor:
    """Mixture of experts on x [N, H] -> [N, H]. Only the experts some token selected are
    materialised (one at a time, via experts.gate_up(e) / experts.down(e))."""
    weights, index = route(x, router_weight, router_bias, top_k)
    out = torch.zeros_like(x)
    for e in torch.unique(index).tolist():
        token, slot = torch.where(index == e)
        h = F.linear(x[token], experts.gate_up(e, x.dtype), experts.gate_up_bias[e].to(x.dtype))
        h = swiglu(h, alpha, limit)
        y = F.linear(h, experts.down(e, x.dtype), experts.down_bias[e].to(x.dtype))
        # .to: under autocast (the nano trainer's --bf16) the products come out in bf16
        out = out.index_add(0, token, (y * weights[token, slot, None]).to(out.dtype))
    return out


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """w [N, K] (K a multiple of 32) -> (q int8 [N, K], scales float16 [N, K/32], unit): one
    scale per 32 consecutive weights of a row, absmax / 127 in units of `unit`, a power of two
    per matrix that puts the largest scale near the top of float16's range (so no block's scale
    is a subnormal: float16 alone, as in llama.cpp's Q8_0, loses precision below 6e-5); q
    rounds to nearest against the stored scale."""
    N, K = w.shape
    if K % BLOCK:
        raise ValueError(f"int8: last dimension {K} is not a multiple of {BLOCK}")
    chunk = 8192  # row chunks: never a float32 copy of a big matrix
    top = max((float(w[i:i + chunk].abs().max()) for i in range(0, N, chunk)), default=0.0) / 127.0
    unit = 2.0 ** (math.ceil(math.log2(top)) - 15) if top > 0 else 1.0
    q = torch.empty(N, K, dtype=torch.int8, device=w.device)
    scales = torch.empty(N, K // BLOCK, dtype=torch.float16, device=w.device)
    for start in range(0, N, chunk):
        rows = w[start:start + chunk].float().view(-1, K // BLOCK, BLOCK)
        s = (rows.abs().amax(-1) / 127.0 / unit).to(torch.float16)
        scales[start:start + chunk] = s
        steps = rows / (s.float() * unit).clamp_min(1e-30)[..., None]
        q[start:start + chunk] = steps.round().clamp(-127, 127).view(-1, K).to(torch.int8)
    return q, scales, unit


def dequantize_int8(q: torch.Tensor, scales: torch.Tensor, unit: float = 1.0,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of quantize_int8 up to rounding: [..., K] in dtype."""
    values = q.float().unflatten(-1, (-1, BLOCK)) * (scales.float() * unit)[..., None]
    return values.flatten(-2).to(dtype)


def linear(x: torch.Tensor, weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [..., K] @ weight.T + bias. weight: a tensor [N, K], or a quantized weight with
    `dequantize(dtype)` (agent.kernels.Int8Weight)."""
    if not isinstance(weight, torch.Tensor):
        weight = weight.dequantize(x.dtype)
    return F.linear(x, weight, None if bias is None else bias.to(x.dtype))

