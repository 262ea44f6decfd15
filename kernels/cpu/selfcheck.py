"""A built kernel variant checks itself against the reference before it serves (build.py runs
this once per build folder and records the verdict there).

Why: the variants are chosen by the CPU's flags, and no development machine runs all of them
(AMX, AVX512-VNNI, AVX2-only EPYC). A variant compiled on a CPU its authors never ran must
still never return wrong numbers: a small problem per kernel, with the edge cases the loops
unroll around (block counts that leave a remainder, row counts around the tiles), is compared
with agent.kernels.reference in float64; a failure makes build.py fall back to the next variant.
"""
from __future__ import annotations

import torch

from .. import reference


def int8_activations(x: torch.Tensor) -> torch.Tensor:
    """x [R, K] (bf16 or float32) as the int8 GEMV and GEMMs read it, in float64: per 32-block,
    rounded half to even to int8 steps of absmax / 127, in the kernels' float32 arithmetic (so
    equal to them)."""
    blocks = x.float().view(x.shape[0], -1, 32)
    amax = blocks.abs().amax(-1, keepdim=True)
    # a tensor divided by a tensor: torch computes `127.0 / amax` as 127 * (1 / amax), which
    # rounds differently and flips ties such as 63.5
    inv = torch.where(amax > 0, torch.full_like(amax, 127.0) / amax, torch.zeros_like(amax))
    steps = torch.round(blocks * inv)
    return (steps.double() * (amax.double() / 127)).view(x.shape)


def failures(ext) -> list[str]:
    """What this compiled variant gets wrong: empty when every check passes."""
    gen = torch.Generator().manual_seed(0)
    wrong = []

    def check(name: str, ok: bool) -> None:
        if not ok:
            wrong.append(name)

    # grouped MXFP4 GEMV and GEMM: 7 blocks (a remainder for 4- and 2-block vectors), 37 rows
    # (tiles of 4 and 2, and of 32 columns, with a tail), groups of 0, 1, 2 and 5 rows
    E, N, KB = 3, 37, 7
    blocks = torch.randint(0, 256, (E, N, KB, 16), dtype=torch.uint8, generator=gen)
    scales = torch.randint(118, 130, (E, N, KB), dtype=torch.uint8, generator=gen)
    bias = torch.randn(E, N, generator=gen)
    experts, offsets = torch.tensor([2, 0, 1, 2]), torch.tensor([0, 5, 5, 6, 8])
    x = torch.randn(8, KB * 32, generator=gen).to(torch.bfloat16)
    weight = reference.dequantize_mxfp4(blocks, scales, torch.float64)
    for product in ("moe_mxfp4_gemv", "moe_mxfp4_gemm"):
        out = getattr(ext, product)(x, blocks, scales, bias, experts, offsets).double()
        for g, e in enumerate(experts.tolist()):
            a, b = int(offsets[g]), int(offsets[g + 1])
            if a < b:
                xs = int8_activations(x[a:b])
                want = xs @ weight[e].T + bias[e].double()
                tol = 1e-5 * (xs.abs() @ weight[e].abs().T + bias[e].double().abs())  # float32 sums
                check(f"{product} (expert {e}, {b - a} rows)", bool(((out[a:b] - want).abs() <= tol).all()))
    check("mxfp4_dequantize_bf16", torch.equal(
        ext.mxfp4_dequantize_bf16(blocks[0].contiguous(), scales[0].contiguous()),
        reference.dequantize_mxfp4(blocks[0], scales[0], torch.bfloat16)))

    # dense GEMVs: bf16 (exact products, float32 sums) and int8 weights with per-32 scales
    w = torch.randn(45, 96, generator=gen).to(torch.bfloat16)
    xd = torch.randn(3, 96, generator=gen).to(torch.bfloat16)
    want = xd.double() @ w.double().T
    tol = 1e-4 * float(want.abs().max())
    check("bf16_gemv", bool(((ext.bf16_gemv(xd, w, None, False).double() - want).abs() <= tol).all()))
    q, s, unit = reference.quantize_int8(w.float())
    wq = reference.dequantize_int8(q, s, unit).double()
    want = xd.double() @ wq.T
    got = ext.int8_gemv(xd.float(), q, s, unit, None, False).double()
    check("int8_gemv", bool(((got - want).abs() <= 1e-3 * float(want.abs().max())).all()))
    xs = int8_activations(xd)
    want = xs @ wq.T
    got = ext.int8_gemm(xd, q, s, unit, None, False).double()
    check("int8_gemm", bool(((got - want).abs() <= 1e-5 * (xs.abs() @ wq.abs().T)).all()))

    # the fused SwiGLU and RMSNorm against their reference formulas
    h = (torch.randn(2, 64, generator=gen) * 4).float()
    got = ext.swiglu_bf16(h, 1.702, 7.0, 32).double()
    want = reference.swiglu(h.double())
    check("swiglu_bf16", bool(((got - want).abs() <= 1e-2 * want.abs() + 1e-3).all()))
    xn = torch.randn(3, 96, generator=gen).to(torch.bfloat16)
    wn = torch.rand(96, generator=gen) + 0.5
    got = ext.rms_norm_bf16(xn, wn, 1e-5).double()
    want = reference.rms_norm(xn.double(), wn.double(), 1e-5)
    check("rms_norm_bf16", bool(((got - want).abs() <= 1e-2 * want.abs() + 1e-3).all()))

    # bf16 attention, prefill and decode: 3 query heads per kv head (rows not a multiple of the
    # tiles), a partial last key block, a window starting inside a block, a query that sees no key
    qa = torch.randn(1, 7, 6, 64, generator=gen).to(torch.bfloat16)
    ka, va = torch.randn(2, 1, 70, 2, 64, generator=gen).to(torch.bfloat16)
    sinks = torch.randn(6, generator=gen)
    positions = torch.tensor([[2, 60, 61, 62, 63, 64, 74]])  # slot = position - 3
    for window in (None, 16):
        for queries in (slice(None), slice(6, 7)):  # many rows per kv head, and one query
            got = ext.attention_bf16(qa[:, queries], ka, va, sinks, positions[:, queries], 3,
                                     -1 if window is None else window, 0.125).double()
            want = reference.attention(qa[:, queries].double(), ka.double(), va.double(),
                                       sinks.double(), positions[:, queries], 3, window, 0.125)
            check(f"attention_bf16 ({got.shape[1]} queries, window {window})",
                  bool(((got - want).abs() <= 2e-2).all()))
            # the same keys in a packed cache (the runtime's bf16 caches), where slot j is
            # position j: every position 3 less (attention depends only on their differences)
            cache = [torch.zeros(1, 2, 8, 32, 16, 2, dtype=torch.bfloat16),
                     torch.zeros(1, 2, 64, 64, 2, dtype=torch.bfloat16)]
            layout = [torch.zeros_like(t) for t in cache]
            slots = torch.arange(70)[None]
            ext.kv_store_packed(*cache, ka, va, slots)
            reference.store_packed(*layout, ka, va, slots)
            check("kv_store_packed", all(torch.equal(a, b) for a, b in zip(cache, layout)))
            got = ext.attention_bf16_packed(qa[:, queries], *cache, sinks,
                                            positions[:, queries] - 3, 70,
                                            -1 if window is None else window, 0.125).double()
            check(f"attention_bf16_packed ({got.shape[1]} queries, window {window})",
                  bool(((got - want).abs() <= 2e-2).all()))
    return wrong
