"""The C++ CPU kernels against the pure-torch reference (dequantize, then matmul), for every
variant this CPU runs (AVX-512 machines test both "avx512" and "avx2").

Oracles: agent.kernels.reference.dequantize_mxfp4 and float64 matmuls. Shapes include block
counts that are odd (the kernels unroll by two blocks), output widths that are not multiples of
their 32-row chunks, row counts around their 4-row tiles, and experts that no row selected.
The MXFP4 GEMV quantizes activations to int8 per 32-block; its error is checked against the
bound that rounding implies (half a quantization step per activation), not a loose rtol.
"""
from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import kernels
from agent.kernels import PackedExperts, reference
from agent.kernels.cpu import build as cpu_build
from agent.kernels.cpu.selfcheck import failures, int8_activations

# the package re-exports functions under these modules' names
cpu_moe = importlib.import_module("agent.kernels.cpu.moe")
CPU_MODULES = [importlib.import_module(f"agent.kernels.cpu.{name}")
               for name in ("moe", "dense", "attention", "norm_rope")]
VARIANTS = [v.name for v in cpu_build.runnable_variants()]


@pytest.fixture(params=VARIANTS or [None], autouse=True)
def ext(request, monkeypatch):
    """One kernel variant; agent.kernels' CPU path uses it too during the test."""
    if request.param is None:
        pytest.skip("no CPU kernel variant for this CPU (needs AVX2+FMA or AVX-512-BF16)")
    module = cpu_build.build(request.param)
    if module is None:
        pytest.skip(f"the {request.param} kernels did not build (no C++ compiler?)")
    for m in CPU_MODULES:
        monkeypatch.setattr(m, "extension", lambda: module)
    return module


def assert_gemv_close(ext, got, x, weight, bias=None):
    """got [R, N] against x [R, K] @ weight[N, K].T (+ bias) in float64. The MXFP4 GEMV (every
    variant) rounds each activation to its block's int8 grid, off by at most half a step
    (absmax / 127 / 2) times |weight|, summed; its float32 sums add a little more."""
    want = x.double() @ weight.T
    if bias is not None:
        want += bias.double()
    if got.numel() == 0:
        return
    slack = 1e-5 * float(want.abs().max()) + 1e-6
    step = x.double().view(x.shape[0], -1, 32).abs().amax(-1) / 127 / 2      # [R, KB]
    per_block = weight.abs().view(weight.shape[0], -1, 32).sum(-1)           # [N, KB]
    bound = step @ per_block.T * 1.001 + slack
    assert bool(((got.double() - want).abs() <= bound).all()), float((got.double() - want).abs().max())
    # and well inside it on average: rounding errors cancel, they do not all add up (an
    # average needs many outputs: one output's error can come near its bound when one
    # large weight dominates its row, as hypothesis found with a single output)
    if got.numel() >= 64:
        assert float((got.double() - want).abs().mean()) < 0.25 * float(bound.mean()) + slack


def test_the_best_variant_for_each_cpu_kind(monkeypatch):
    avx2 = {"avx2", "fma", "f16c"}
    avx512 = avx2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni",
                     "avx512vbmi"}
    cooper_lake = avx512 - {"avx512vbmi"}  # AVX-512 BF16 without vpermb: the AVX2 code
    for flags, want in ((avx512, ["avx512", "avx2"]), (cooper_lake, ["avx2"]), (avx2, ["avx2"]),
                        ({"sse4_2"}, [])):
        monkeypatch.setattr(cpu_build, "cpu_flags", lambda flags=flags: flags)
        cpu_build.runnable_variants.cache_clear()
        assert [v.name for v in cpu_build.runnable_variants()] == want
        for forced, chosen in (("1", want[0] if want else None), ("avx2", "avx2" if want else None),
                               ("0", None)):
            monkeypatch.setenv("GPT_OSS_AGENT_CPU_KERNELS", forced)
            assert getattr(cpu_build.chosen_variant(), "name", None) == chosen
    cpu_build.runnable_variants.cache_clear()


def test_each_variant_passes_its_self_check(ext):
    assert failures(ext) == []


class Miscompiled:
    """A kernel module whose MXFP4 GEMV is off by one scale step (what a wrong tail mask or lane
    order would do), everything else the real variant's."""
    def __init__(self, real):
        self.real, self.isa = real, real.isa

    def __getattr__(self, name):
        return getattr(self.real, name)

    def moe_mxfp4_gemv(self, *args):
        return self.real.moe_mxfp4_gemv(*args) * 1.01


def test_a_variant_that_fails_its_self_check_gives_way_to_the_next(ext, monkeypatch, tmp_path):
    assert [f.split(" ")[0] for f in failures(Miscompiled(ext))] == ["moe_mxfp4_gemv"] * 3
    runnable = [v.name for v in cpu_build.runnable_variants()]
    real_build = cpu_build.build
    monkeypatch.setattr(cpu_build, "build", lambda name: (
        Miscompiled(real_build(name)) if name == runnable[0] else real_build(name)))
    monkeypatch.setattr(cpu_build, "cache_dir", lambda variant: tmp_path / variant.name)
    for v in cpu_build.VARIANTS:
        (tmp_path / v.name).mkdir()
    monkeypatch.setenv("GPT_OSS_AGENT_CPU_KERNELS", "1")
    cpu_build.extension.cache_clear()
    try:
        with pytest.warns(UserWarning, match=f"CPU kernels \\({runnable[0]}\\) failed their self-check"):
            chosen = cpu_build.extension()
        assert getattr(chosen, "isa", None) == (runnable[1] if len(runnable) > 1 else None)
        assert (tmp_path / runnable[0] / "selfcheck").read_text().startswith("wrong: moe_mxfp4_gemv")
        cpu_build.extension.cache_clear()  # the verdict is kept: no second check, same answer
        with pytest.warns(UserWarning, match="failed their self-check"):
            assert getattr(cpu_build.extension(), "isa", None) == getattr(chosen, "isa", None)
    finally:
        cpu_build.extension.cache_clear()


def random_packed(gen, experts, rows, nblocks, low=118, high=130):
    blocks = torch.randint(0, 256, (experts, rows, nblocks, 16), dtype=torch.uint8, generator=gen)
    scales = torch.randint(low, high, (experts, rows, nblocks), dtype=torch.uint8, generator=gen)
    return blocks, scales


# block counts: every remainder of the 4-block (AVX-512) and 2-block (AVX2) vectors, and 20b's
# 90; row counts around the 4-row and 2-row tiles
@pytest.mark.parametrize("nblocks,rows", [(1, 1), (2, 6), (3, 37), (4, 64), (9, 33), (90, 9)])
@pytest.mark.parametrize("bias_dtype", [None, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("product", ["moe_mxfp4_gemv", "moe_mxfp4_gemm"])
def test_grouped_gemv_equals_dequantized_matmul(ext, nblocks, rows, bias_dtype, product):
    gen = torch.Generator().manual_seed(nblocks * 100 + rows)
    E = 5
    blocks, scales = random_packed(gen, E, rows, nblocks)
    bias = (torch.randn(E, rows, generator=gen).to(bias_dtype) if bias_dtype
            else torch.empty(0))
    # groups: expert 3 with 9 rows (two full 4-row tiles and a tail), expert 0 with none,
    # expert 4 with 1, expert 1 with 2 -- in non-sorted expert order
    experts = torch.tensor([3, 0, 4, 1])
    offsets = torch.tensor([0, 9, 9, 10, 12])
    x = torch.randn(12, nblocks * 32, generator=gen).to(torch.bfloat16)
    out = getattr(ext, product)(x, blocks, scales, bias, experts, offsets)
    weight = reference.dequantize_mxfp4(blocks, scales, torch.float64)
    for g, e in enumerate(experts.tolist()):
        a, b = offsets[g], offsets[g + 1]
        assert_gemv_close(ext, out[a:b], x[a:b], weight[e], bias[e] if bias_dtype else None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(E=st.integers(1, 5), N=st.integers(1, 70), nblocks=st.integers(1, 7),
       counts=st.lists(st.integers(0, 10), min_size=1, max_size=6), seed=st.integers(0, 2**16),
       product=st.sampled_from(["moe_mxfp4_gemv", "moe_mxfp4_gemm"]))
def test_grouped_gemv_on_random_shapes(ext, E, N, nblocks, counts, seed, product):
    gen = torch.Generator().manual_seed(seed)
    blocks, scales = random_packed(gen, E, N, nblocks, low=100, high=150)
    experts = torch.randint(0, E, (len(counts),), generator=gen)
    offsets = torch.tensor([0] + counts).cumsum(0)
    x = torch.randn(int(offsets[-1]), nblocks * 32, generator=gen).to(torch.bfloat16)
    bias = torch.randn(E, N, generator=gen)
    out = getattr(ext, product)(x, blocks, scales, bias, experts, offsets)
    weight = reference.dequantize_mxfp4(blocks, scales, torch.float64)
    for g, e in enumerate(experts.tolist()):
        a, b = offsets[g], offsets[g + 1]
        assert_gemv_close(ext, out[a:b], x[a:b], weight[e], bias[e])


def unaligned(t: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of t whose data does not start on a 64-byte boundary (like tensors
    mmap'd from a safetensors file)."""
    flat = torch.empty(t.numel() + 1, dtype=t.dtype)
    out = flat[1:].view(t.shape)
    out.copy_(t)
    assert out.is_contiguous() and out.data_ptr() % 64
    return out


def test_kernels_accept_unaligned_tensors(ext):
    gen = torch.Generator().manual_seed(4)
    blocks, scales = random_packed(gen, 2, 40, 3)
    x = torch.randn(3, 96, generator=gen).to(torch.bfloat16)
    experts, offsets = torch.tensor([1]), torch.tensor([0, 3])
    for product in (ext.moe_mxfp4_gemv, ext.moe_mxfp4_gemm):
        want = product(x, blocks, scales, torch.empty(0), experts, offsets)
        got = product(unaligned(x), unaligned(blocks), unaligned(scales), torch.empty(0), experts, offsets)
        assert torch.equal(got, want)
    w = torch.randn(50, 96, generator=gen).to(torch.bfloat16)
    assert torch.equal(ext.bf16_gemv(unaligned(x), unaligned(w), None, False),
                       ext.bf16_gemv(x, w, None, False))
    assert torch.equal(ext.mxfp4_dequantize_bf16(unaligned(blocks[0]), unaligned(scales[0])),
                       ext.mxfp4_dequantize_bf16(blocks[0], scales[0]))


def test_gemv_rejects_bad_input_with_one_clear_message(ext):
    blocks = torch.zeros(2, 4, 3, 16, dtype=torch.uint8)
    scales = torch.zeros(2, 4, 3, dtype=torch.uint8)
    x = torch.zeros(1, 96, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="expert index 2"):
        ext.moe_mxfp4_gemv(x, blocks, scales, torch.empty(0), torch.tensor([2]), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="x must be contiguous bf16"):
        ext.moe_mxfp4_gemv(x[:, :64], blocks, scales, torch.empty(0), torch.tensor([0]), torch.tensor([0, 1]))


def test_dequantize_is_exact_over_the_scale_range(ext):
    gen = torch.Generator().manual_seed(1)
    blocks, scales = random_packed(gen, 1, 300, 5, low=3, high=255)  # both code paths
    blocks, scales = blocks[0], scales[0]
    got = ext.mxfp4_dequantize_bf16(blocks, scales)
    want = reference.dequantize_mxfp4(blocks, scales, torch.bfloat16)
    assert torch.equal(got, want)


@pytest.mark.parametrize("rows", range(1, 10))  # every register tile, and a second group of rows
@pytest.mark.parametrize("n", [1, 7, 133])           # fewer rows than a tile; tails; several threads
def test_dense_gemvs_for_every_row_count(ext, rows, n):
    gen = torch.Generator().manual_seed(rows * 1000 + n)
    K = 160  # 5 blocks of 32: an odd count
    w = torch.randn(n, K, generator=gen).to(torch.bfloat16)
    x = torch.randn(rows, K, generator=gen).to(torch.bfloat16)
    want = x.double() @ w.double().T
    got = ext.bf16_gemv(x, w, None, False).double()  # exact products, float32 sums
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * want.abs().max().item())
    q = torch.randint(-127, 128, (n, K), dtype=torch.int8, generator=gen)
    s = torch.rand(n, K // 32, generator=gen).half()
    want = x.double() @ (q.double().view(n, -1, 32) * s.double()[..., None]).view(n, K).T / 8
    got = ext.int8_gemv(x, q, s, 1 / 8, None, False).double()  # int16 activations: ~3e-5 of the max
    torch.testing.assert_close(got, want, rtol=0, atol=3e-4 * want.abs().max().item())


def test_int8_gemv_equals_dequantized_matmul(ext):
    gen = torch.Generator().manual_seed(2)
    q = torch.randint(-127, 128, (45, 96), dtype=torch.int8, generator=gen)
    s = torch.rand(45, 3, generator=gen).half()
    x = torch.randn(6, 96, generator=gen)
    weight = (q.double().view(45, 3, 32) * s.double()[..., None]).view(45, 96) * 2 ** -20
    want = x.double() @ weight.T
    got = ext.int8_gemv(x, q, s, 2 ** -20, None, False)
    # activations are quantized to int16 per row: error ~ 3e-5 of the row's largest value
    torch.testing.assert_close(got.double(), want, rtol=0, atol=3e-4 * want.abs().max().item())


@pytest.mark.parametrize("rows,n,kb", [(1, 1, 1), (6, 45, 3), (13, 37, 7), (9, 70, 90)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_gemm_equals_dequantized_matmul(ext, rows, n, kb, dtype):
    """Many rows (prefill): activations int8 per 32-block like the MXFP4 GEMM, so exact against
    int8-rounded activations up to float32 sums; column counts around its 32-column tiles."""
    gen = torch.Generator().manual_seed(rows * 1000 + n)
    q = torch.randint(-127, 128, (n, kb * 32), dtype=torch.int8, generator=gen)
    s = torch.rand(n, kb, generator=gen).half()
    bias = torch.randn(n, generator=gen)
    x = torch.randn(rows, kb * 32, generator=gen).to(dtype)
    weight = (q.double().view(n, kb, 32) * s.double()[..., None]).view(n, kb * 32) / 4
    xs = int8_activations(x)
    want = xs @ weight.T + bias.double()
    got = ext.int8_gemm(x, q, s, 0.25, bias, False).double()
    tol = 1e-5 * (xs.abs() @ weight.abs().T + bias.double().abs())
    assert bool(((got - want).abs() <= tol).all()), float(((got - want).abs() / tol).max())
    as_bf16 = ext.int8_gemm(x, q, s, 0.25, bias, True)
    assert as_bf16.dtype == torch.bfloat16 and torch.equal(as_bf16, got.float().to(torch.bfloat16))


def random_experts(gen, E, H, I):
    gb, gs = random_packed(gen, E, 2 * I, H // 32, 121, 126)
    db, ds = random_packed(gen, E, H, I // 32, 121, 126)
    return PackedExperts(gb, gs, torch.randn(E, 2 * I, generator=gen).to(torch.bfloat16),
                         db, ds, torch.randn(E, H, generator=gen).to(torch.bfloat16))


def int8_grid(v: torch.Tensor) -> torch.Tensor:
    """v [K] (float64, bf16 values) rounded to the MXFP4 GEMV's activation grid."""
    return int8_activations(v[None].to(torch.bfloat16))[0]


@pytest.mark.parametrize("tokens", [1, 3, 8, 60, 200])  # decode, small batch, mixed, prefill paths
def test_moe_matches_reference(ext, tokens):
    gen = torch.Generator().manual_seed(tokens)
    E, H, I, top_k = 6, 96, 64, 2
    experts = random_experts(gen, E, H, I)
    router_w = torch.randn(E, H, generator=gen)
    router_b = torch.randn(E, generator=gen)
    x = torch.randn(tokens, H, generator=gen).to(torch.bfloat16)
    assert kernels.implementation("moe", "cpu").__module__ == "agent.kernels.cpu.moe"
    # the MXFP4 GEMV (experts with few rows; every expert on AVX2) rounds its inputs, x and the
    # SwiGLU output (bf16), to the int8 grid; the oracle does the same in float64
    with torch.no_grad():
        got = kernels.moe(x, router_w.to(torch.bfloat16), router_b.to(torch.bfloat16), experts, top_k)
        # the fast path's routing (checked against the reference's below); the rest in float64
        weights, index = cpu_moe.route(x, router_w.to(torch.bfloat16), router_b.to(torch.bfloat16), top_k)
        counts = torch.bincount(index.flatten(), minlength=E)
        # every path rounds to the int8 grid but the dequantized bf16 matmul (AMX CPUs)
        exact_rows = cpu_moe.gemv_max_rows(ext) if cpu_build.has_amx() else 1 << 30
        want = torch.zeros(tokens, H, dtype=torch.float64)
        exact = torch.zeros(tokens, H, dtype=torch.float64)
        for t in range(tokens):
            for s in range(top_k):
                e = int(index[t, s])
                grid = int8_grid if counts[e] <= exact_rows else (lambda v: v)
                for rounded, total in ((grid, want), (lambda v: v, exact)):
                    h = experts.gate_up(e, torch.float64) @ rounded(x[t].double()) + experts.gate_up_bias[e].double()
                    a = rounded(reference.swiglu(h).to(torch.bfloat16).double())
                    y = experts.down(e, torch.float64) @ a + experts.down_bias[e].double()
                    total[t] += weights[t, s].double() * y
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-2 * want.abs().max().item())
    # what the int8 rounding costs against exact activations (~1% rms at these small widths)
    error = (got.double() - exact).pow(2).mean().sqrt() / exact.pow(2).mean().sqrt()
    assert float(error) < 3e-2


def test_router_picks_the_reference_experts():
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(40, 96, generator=gen).to(torch.bfloat16)
    w, b = (torch.randn(8, 96, generator=gen) * 0.3).to(torch.bfloat16), torch.zeros(8, dtype=torch.bfloat16)
    weights, index = cpu_moe.route(x[:3], w, b, 4)                       # the GEMV rows
    want_weights, want_index = reference.route(x[:3], w, b, 4)
    logits = torch.nn.functional.linear(x[:3].float(), w.float()).sort(-1, descending=True).values
    clear = (logits[:, 3] - logits[:, 4]) > 0.05                         # no near-tie at the cut
    assert clear.any()
    assert torch.equal(index[clear].sort(-1).values, want_index[clear].sort(-1).values)
    torch.testing.assert_close(weights.float(), want_weights.float(), rtol=0, atol=2e-2)


def test_float32_moe_stays_exact():
    gen = torch.Generator().manual_seed(6)
    experts = random_experts(gen, 4, 64, 32)
    x, router_w = torch.randn(3, 64, generator=gen), torch.randn(4, 64, generator=gen)
    got = kernels.moe(x, router_w, torch.zeros(4), experts, 2)
    assert torch.equal(got, reference.moe(x, router_w, torch.zeros(4), experts, 2))


def test_moe_with_gradients_uses_the_differentiable_reference():
    gen = torch.Generator().manual_seed(5)
    experts = random_experts(gen, 4, 64, 32)
    x = torch.randn(3, 64, generator=gen, requires_grad=True)
    out = kernels.moe(x, torch.randn(4, 64, generator=gen), torch.zeros(4), experts, 2)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("rows", [1, 3, 6, 20])  # GEMV kernels, and the matmul path
def test_linear_bf16_and_int8_match_reference(rows):
    gen = torch.Generator().manual_seed(rows)
    w = (torch.randn(70, 96, generator=gen) * 0.1).to(torch.bfloat16)
    bias = torch.randn(70, generator=gen).to(torch.bfloat16)
    x = torch.randn(2, rows, 96, generator=gen).to(torch.bfloat16)
    assert kernels.implementation("linear", "cpu").__module__ == "agent.kernels.cpu.dense"
    want = reference.linear(x.double(), w.double(), bias.double())
    got = kernels.linear(x, w, bias)
    assert got.shape == (2, rows, 70) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), want, rtol=1e-2, atol=1e-2 * want.abs().max().item())
    # 8-bit mode: the kernel equals the dequantized weight; the quantization error is small
    w8 = kernels.Int8Weight.quantize(w)
    exact = reference.linear(x.double(), w8.dequantize(torch.float64), bias.double())
    got8 = kernels.linear(x, w8, bias)
    torch.testing.assert_close(got8.double(), exact, rtol=1e-2, atol=1e-2 * exact.abs().max().item())
    assert (exact - want).abs().max() < 0.02 * want.abs().max()


def test_int8_weight_rows_dequantize_like_an_embedding_table():
    gen = torch.Generator().manual_seed(9)
    table = torch.randn(50, 64, generator=gen).to(torch.bfloat16)
    w8 = kernels.Int8Weight.quantize(table)
    ids = torch.tensor([[3, 3, 49]])
    rows = w8[ids]
    assert rows.shape == (1, 3, 64) and rows.dtype == torch.bfloat16
    torch.testing.assert_close(rows.float(), table[ids].float(), rtol=0, atol=table.abs().max().item() / 127)


@pytest.mark.parametrize("magnitude", [1e-6, 1e-3, 1.0, 1e4])
def test_int8_weights_keep_their_precision_at_any_magnitude(magnitude):
    """float16 scales alone would be subnormal below 6e-5 (blocks of weights under ~8e-3) and
    lose bits; the per-matrix unit keeps every block's error at half an int8 step of its own
    absmax, whatever the matrix's scale, and a block of zeros stays zeros."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(40, 128, generator=gen, dtype=torch.float64) * magnitude
    w[:, :32] *= 1e-3          # small blocks beside large ones in the same matrix
    w[5, 64:96] = 0
    w8 = kernels.Int8Weight.quantize(w.float())
    assert w8.scales.dtype == torch.float16 and w8.q.dtype == torch.int8
    blocks = w.view(40, 4, 32)
    error = (w8.dequantize(torch.float64).view(40, 4, 32) - blocks).abs().amax(-1)
    step = blocks.abs().amax(-1) / 127
    assert bool((error <= 0.5 * step * (1 + 2 ** -9) + 1e-30).all()), float((error / step).max())
    assert bool((w8.dequantize(torch.float64)[5, 64:96] == 0).all())


@pytest.mark.parametrize("Tq,Tk,offset,window", [(40, 40, 0, None), (40, 40, 0, 8), (20, 70, 3, 16),
                                                 (1, 70, 0, None), (1, 50, 4, 16), (3, 30, 0, None)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_matches_reference(Tq, Tk, offset, window, dtype):
    gen = torch.Generator().manual_seed(Tq + Tk)
    B, Hq, Hkv, D = 2, 8, 2, 32
    q = torch.randn(B, Tq, Hq, D, generator=gen).to(dtype)
    k, v = torch.randn(2, B, Tk, Hkv, D, generator=gen).to(dtype)
    sinks = torch.randn(Hq, generator=gen) * 3
    positions = (torch.arange(Tq) + offset + Tk - Tq)[None].repeat(B, 1)
    positions[1] -= 5  # the second row's queries sit earlier: some see no key in the window
    assert kernels.implementation("attention", "cpu").__module__ == "agent.kernels.cpu.attention"
    got = kernels.attention(q, k, v, sinks, positions, offset, window, 0.2)
    want = reference.attention(q.double(), k.double(), v.double(), sinks.double(), positions,
                               offset, window, 0.2)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


def test_fused_swiglu_matches_reference_including_saturation(ext):
    gen = torch.Generator().manual_seed(11)
    h = torch.randn(5, 64, generator=gen) * 8
    h[0, :6] = torch.tensor([-200.0, 3.0, 100.0, -100.0, 0.5, 8.0])  # exp under/overflow, clamps
    got = ext.swiglu_bf16(h, 1.702, 7.0, 48)
    want = reference.swiglu(h.double(), 1.702, 7.0)
    assert got.shape == (5, 48) and got.dtype == torch.bfloat16
    assert torch.equal(got[:, 32:], torch.zeros(5, 16, dtype=torch.bfloat16))  # padding
    torch.testing.assert_close(got[:, :32].double(), want, rtol=8e-3, atol=1e-6)


def test_decode_attention_reads_cache_slices_and_handles_queries_that_see_nothing():
    gen = torch.Generator().manual_seed(13)
    B, Hq, Hkv, D = 2, 16, 2, 64
    cache_k, cache_v = torch.randn(2, B, 80, Hkv, D, generator=gen).to(torch.bfloat16)
    k, v = cache_k[:, 10:60], cache_v[:, 10:60]        # strided rows, as KVCache.store returns
    q = torch.randn(B, 2, Hq, D, generator=gen).to(torch.bfloat16)
    sinks = torch.randn(Hq, generator=gen)
    positions = torch.tensor([[40, 41], [5, 58]])      # row 1, first query: before every key
    for window in (None, 8):
        got = kernels.attention(q, k, v, sinks, positions, 10, window, 0.125)
        want = reference.attention(q.double(), k.double(), v.double(), sinks.double(), positions,
                                   10, window, 0.125)
        torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=2e-2)
        assert torch.equal(got[1, 0], torch.zeros(Hq, D, dtype=torch.bfloat16))



@pytest.mark.parametrize("shape", [(1, 1, 2880), (2, 7, 96), (300, 64)])
def test_rms_norm_matches_reference(shape):
    gen = torch.Generator().manual_seed(shape[-1])
    x = (torch.randn(shape, generator=gen) * 3).to(torch.bfloat16)
    w = torch.randn(shape[-1], generator=gen)
    assert kernels.implementation("rms_norm", "cpu").__module__ == "agent.kernels.cpu.norm_rope"
    got = kernels.rms_norm(x, w, 1e-5)
    want = reference.rms_norm(x.double(), w.double(), 1e-5)
    assert got.dtype == torch.bfloat16 and got.shape == x.shape
    torch.testing.assert_close(got.double(), want, rtol=8e-3, atol=1e-6)


@pytest.mark.parametrize("B,T,heads,D", [(1, 1, 64, 64), (2, 5, 3, 32), (1, 40, 8, 128)])
def test_rope_matches_reference(B, T, heads, D):
    gen = torch.Generator().manual_seed(T * heads)
    x = torch.randn(B, T, heads, D, generator=gen).to(torch.bfloat16)
    positions = torch.randint(0, 100_000, (B, T), generator=gen)
    inv_freq, concentration = kernels.yarn_frequencies(D, 150000.0, 32.0, 4096, 32.0, 1.0)
    cos, sin = kernels.rope_tables(positions, inv_freq, concentration)
    got = kernels.rope(x, cos, sin)
    # the oracle rounds cos/sin to bf16 as both implementations do, then works in float64
    want = reference.rope(x.double(), cos.to(torch.bfloat16).double(), sin.to(torch.bfloat16).double())
    assert got.dtype == torch.bfloat16 and got.shape == x.shape
    torch.testing.assert_close(got.double(), want, rtol=8e-3, atol=8e-3 * want.abs().max().item())


@pytest.mark.parametrize("window", [None, 16])
@pytest.mark.parametrize("cached", [0, 1, 15, 16, 17, 40, 200])
@pytest.mark.parametrize("Tq", [2, 24])
def test_prefill_on_a_cached_prefix_matches_reference(Tq, cached, window):
    """A chunk of Tq new queries on top of `cached` keys: sliding layers read only their window
    (the window's start falls anywhere in the chunk), full layers split the keys every query
    sees from the chunk's own; sinks join, and B=2 rows sit at different positions."""
    gen = torch.Generator().manual_seed(Tq * 1000 + cached)
    B, Hq, Hkv, D = 2, 8, 2, 64
    Tk = cached + Tq
    q = torch.randn(B, Tq, Hq, D, generator=gen)
    k, v = torch.randn(2, B, Tk, Hkv, D, generator=gen)
    sinks = torch.randn(Hq, generator=gen) * 2
    positions = (torch.arange(Tq) + cached)[None].repeat(B, 1)
    positions[1] -= min(cached, 3)     # the second row lags: its window starts elsewhere
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        got = kernels.attention(q.to(dtype), k.to(dtype), v.to(dtype), sinks, positions, 0,
                                window, D ** -0.5)
        want = reference.attention(q.double(), k.double(), v.double(), sinks.double(),
                                   positions, 0, window, D ** -0.5)
        torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("cached", [0, 1, 63, 64, 65, 127, 128, 129, 300])
@pytest.mark.parametrize("Tq", [1, 4, 5, 70])  # decode (keys split across threads), prefill
def test_bf16_attention_kernel_matches_reference(ext, Tq, cached):
    """The tiled kernel with gpt-oss's window (128) and 8 query heads per kv head: key blocks
    of 64 (16 on AVX2) that a window's start or a chunk's causal edge cuts inside, blocks past
    the window skipped, a partial last block, rows of a work item not a multiple of its tiles,
    and a batch row whose first query sits before every cached key (it sees nothing: zeros)."""
    gen = torch.Generator().manual_seed(Tq * 1000 + cached)
    B, Hq, Hkv, D, offset = 2, 16, 2, 64, 2
    Tk = cached + Tq
    q = torch.randn(B, Tq, Hq, D, generator=gen).to(torch.bfloat16)
    k, v = torch.randn(2, B, Tk, Hkv, D, generator=gen).to(torch.bfloat16)
    sinks = torch.randn(Hq, generator=gen) * 2
    positions = (torch.arange(Tq) + cached + offset)[None].repeat(B, 1)
    positions[1] -= cached + offset + 1   # the second row starts before every key
    for window in (None, 128):
        got = ext.attention_bf16(q, k, v, sinks, positions, offset,
                                    -1 if window is None else window, D ** -0.5)
        want = reference.attention(q.double(), k.double(), v.double(), sinks.double(),
                                   positions, offset, window, D ** -0.5)
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=2e-2)
        assert torch.equal(got[1, 0], torch.zeros(Hq, D, dtype=torch.bfloat16))
        # the runtime's path takes the same kernel for bf16
        torch.testing.assert_close(kernels.attention(q, k, v, sinks, positions, offset, window,
                                                     D ** -0.5), got, rtol=0, atol=0)


def packed_cache(B, Hkv, D, slots):
    return (torch.zeros(B, Hkv, slots // 16, D // 2, 16, 2, dtype=torch.bfloat16),
            torch.zeros(B, Hkv, slots // 2, D, 2, dtype=torch.bfloat16))


def test_packed_cache_writes_match_the_layout_definition(ext):
    """kv_store_packed against reference.store_packed (the layout's definition), byte for
    byte: rows at different positions, chunks that start and end inside a group of 16, one
    position of a pair written without its neighbour; unpacked, the cache holds what was
    written where it was written."""
    gen = torch.Generator().manual_seed(21)
    B, Hkv, D, slots = 2, 3, 64, 192
    ours, theirs = packed_cache(B, Hkv, D, slots), packed_cache(B, Hkv, D, slots)
    k, v = torch.randn(2, B, slots, Hkv, D, generator=gen).to(torch.bfloat16)
    for lo, hi in ((0, 7), (7, 40), (40, 41), (41, 130), (150, 151)):
        positions = torch.stack([torch.arange(lo, hi), torch.arange(lo, hi) + 5])
        chunk = [t.gather(1, positions[:, :, None, None].expand(-1, -1, Hkv, D)) for t in (k, v)]
        ext.kv_store_packed(*ours, *chunk, positions)
        reference.store_packed(*theirs, *chunk, positions)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    uk, uv = reference.unpack_cache(*ours)
    assert torch.equal(uk[0, :130], k[0, :130]) and torch.equal(uv[1, 5:135], v[1, 5:135])
    assert torch.equal(uk[0, 150], k[0, 150]) and not uv[0, 130:150].any()
    with pytest.raises(RuntimeError, match="outside the cache"):
        ext.kv_store_packed(*ours, *chunk, positions + slots)


@pytest.mark.parametrize("Tq,length", [(1, 1), (1, 64), (1, 65), (1, 300), (4, 129), (5, 64),
                                       (70, 300), (70, 70)])
def test_attention_over_a_packed_cache_matches_reference(ext, Tq, length):
    """The kernel reading the cache as it is (decode does no packing): the same cases as the
    position-major kernel (window 128 and none, a window's start and causal edges inside key
    blocks, a partial last block, a batch row whose first query sees nothing), against the
    float64 reference on the unpacked cache, and bit-equal to the kernel on position-major
    rows where their key blocks coincide (no window)."""
    gen = torch.Generator().manual_seed(Tq * 1000 + length)
    B, Hq, Hkv, D, slots = 2, 16, 2, 64, 384
    keys, values = packed_cache(B, Hkv, D, slots)
    k, v = torch.randn(2, B, length, Hkv, D, generator=gen).to(torch.bfloat16)
    ext.kv_store_packed(keys, values, k, v, torch.arange(length)[None].repeat(B, 1))
    q = torch.randn(B, Tq, Hq, D, generator=gen).to(torch.bfloat16)
    sinks = torch.randn(Hq, generator=gen) * 2
    positions = (torch.arange(Tq) + length - Tq)[None].repeat(B, 1)
    positions[1] -= length - Tq + 1   # the second row starts before every key
    for window in (None, 128):
        got = ext.attention_bf16_packed(q, keys, values, sinks, positions, length,
                                        -1 if window is None else window, D ** -0.5)
        want = reference.attention_packed(q.double(), keys.double(), values.double(),
                                          sinks.double(), positions, length, window, D ** -0.5)
        torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=2e-2)
        assert torch.equal(got[1, 0], torch.zeros(Hq, D, dtype=torch.bfloat16))
        if window is None:
            rows = ext.attention_bf16(q, k, v, sinks, positions, 0, -1, D ** -0.5)
            assert torch.equal(got, rows)
        torch.testing.assert_close(kernels.attention_packed(q, keys, values, sinks, positions,
                                                            length, window), got, rtol=0, atol=0)


def test_packed_cache_rejects_bad_input_with_one_clear_message(ext):
    keys, values = packed_cache(1, 2, 64, 128)
    q = torch.zeros(1, 1, 4, 64, dtype=torch.bfloat16)
    sinks, positions = torch.zeros(4), torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(RuntimeError, match="attention_bf16_packed: bad cache shapes"):
        ext.attention_bf16_packed(q, keys, values, sinks, positions, 129, -1, 0.125)
    with pytest.raises(RuntimeError, match="contiguous bf16 in the packed layouts"):
        ext.attention_bf16_packed(q, keys.float(), values, sinks, positions, 1, -1, 0.125)
