"""MXFP4: dequantization bit-exact against an independent decoder; quantization round trips."""
from __future__ import annotations

import math
import struct

import torch

from agent.model import mxfp4


def decode_e2m1(code: int) -> float:
    """FP4 E2M1 from its bits (sign | 2-bit exponent, bias 1 | 1-bit mantissa), no table."""
    sign = -1.0 if code & 0b1000 else 1.0
    exponent, mantissa = (code >> 1) & 0b11, code & 0b1
    if exponent == 0:  # subnormal: 0 or 0.5
        return sign * mantissa * 0.5
    return sign * (1 + mantissa / 2) * 2.0 ** (exponent - 1)


def independent_dequantize(blocks: torch.Tensor, scales: torch.Tensor) -> list[float]:
    """Element by element in Python floats: byte j -> values 2j (low nibble), 2j+1 (high)."""
    out = []
    for block, scale in zip(blocks.reshape(-1, 16).tolist(), scales.reshape(-1).tolist()):
        for byte in block:
            for code in (byte & 0xF, byte >> 4):
                out.append(math.ldexp(decode_e2m1(code), scale - 127))
    return out


def f32_bits(values) -> list[int]:
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def test_dequantize_is_bit_exact():
    gen = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 4, 5, 16), dtype=torch.uint8, generator=gen)
    # scales across the whole e8m0 range that float32 holds, subnormals included
    scales = torch.randint(0, 255, (3, 4, 5), dtype=torch.uint8, generator=gen)
    scales[0, 0, :] = torch.tensor([0, 1, 127, 253, 254], dtype=torch.uint8)
    got = mxfp4.dequantize(blocks, scales, torch.float32)
    assert got.shape == (3, 4, 5 * 32)
    finite = [v if abs(v) < 3.4e38 else math.copysign(math.inf, v)
              for v in independent_dequantize(blocks, scales)]
    assert f32_bits(got.flatten().tolist()) == f32_bits(finite)


def test_dequantize_bf16_is_exact_in_range():
    gen = torch.Generator().manual_seed(1)
    blocks = torch.randint(0, 256, (2, 8, 3, 16), dtype=torch.uint8, generator=gen)
    scales = torch.randint(100, 140, (2, 8, 3), dtype=torch.uint8, generator=gen)
    wide = mxfp4.dequantize(blocks, scales, torch.float32)
    assert torch.equal(mxfp4.dequantize(blocks, scales, torch.bfloat16).float(), wide)


def test_quantize_round_trips_representable_values():
    gen = torch.Generator().manual_seed(2)
    blocks = torch.randint(0, 256, (6, 2, 16), dtype=torch.uint8, generator=gen)
    scales = torch.randint(110, 130, (6, 2), dtype=torch.uint8, generator=gen)
    values = mxfp4.dequantize(blocks, scales)
    again = mxfp4.dequantize(*mxfp4.quantize(values))
    assert torch.equal(again, values)


def test_quantize_error_is_within_half_a_step():
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(3))
    blocks, scales = mxfp4.quantize(w, rows_per_chunk=7)
    assert blocks.dtype == scales.dtype == torch.uint8
    assert blocks.shape == (64, 4, 16) and scales.shape == (64, 4)
    back = mxfp4.dequantize(blocks, scales)
    step = torch.ldexp(torch.ones(64, 4), scales.int() - 127)  # the largest FP4 gap is 2 units
    error = (back - w).abs().view(64, 4, 32).amax(-1)
    assert bool((error <= step + 1e-12).all())
    # every block uses the largest magnitude that fits: no wasted exponent
    assert bool(((w.abs().view(64, 4, 32).amax(-1) / step) > 3).all())
