"""Triton kernels in the interpreter (TRITON_INTERPRET=1, CPU) against the reference.

Run by test_triton_kernels.py in a fresh process: the interpreter must be switched on before
triton is first imported, which other test modules (transformers) do. Tiny shapes: the
interpreter runs each program in numpy. The same kernels run compiled on CUDA (agent.kernels
dispatches CUDA tensors to agent.kernels.triton).
"""
from __future__ import annotations

import importlib
import os
import warnings

import pytest
import torch

import triton  # noqa: F401  (imported after TRITON_INTERPRET=1 is set by the runner)

import agent.kernels.triton as tri
from agent.kernels import PackedExperts, reference

# the package's `moe`/`attention` entry points shadow the submodules of the same names
tri_moe = importlib.import_module("agent.kernels.triton.moe")
tri_attention = importlib.import_module("agent.kernels.triton.attention")

assert os.environ.get("TRITON_INTERPRET") == "1", "run through test_triton_kernels.py"


def packed_experts(gen, E, H, I):
    def packed(shape):
        return (torch.randint(0, 256, shape + (16,), dtype=torch.uint8, generator=gen),
                torch.randint(121, 126, shape, dtype=torch.uint8, generator=gen))
    (gb, gs), (db, ds) = packed((E, 2 * I, H // 32)), packed((E, H, I // 32))
    return PackedExperts(gb, gs, torch.randn(E, 2 * I, generator=gen), db, ds,
                         torch.randn(E, H, generator=gen))


def routed_reference(x, weights, index, experts):
    """Per (token, slot): dequantize the expert, matmul, clamped SwiGLU, matmul, weight."""
    out = torch.zeros(x.shape, dtype=torch.float64)
    for t in range(x.shape[0]):
        for s in range(index.shape[1]):
            e = int(index[t, s])
            h = experts.gate_up(e, torch.float64) @ x[t].double() + experts.gate_up_bias[e].double()
            y = experts.down(e, torch.float64) @ reference.swiglu(h) + experts.down_bias[e].double()
            out[t] += weights[t, s].double() * y
    return out


@pytest.mark.parametrize("tokens,H,I", [(7, 96, 64), (1, 64, 96), (20, 160, 32)])
def test_moe_kernels_match_reference_with_empty_experts(tokens, H, I):
    gen = torch.Generator().manual_seed(tokens)
    E, top_k = 6, 2
    experts = packed_experts(gen, E, H, I)
    x = torch.randn(tokens, H, generator=gen)
    index = torch.randint(0, 3, (tokens, 1), generator=gen)         # experts 3..5 stay empty
    index = torch.cat((index, (index + 1) % 3), dim=1)
    weights = torch.rand(tokens, top_k, generator=gen)
    with warnings.catch_warnings():  # sigmoid of a very negative gate overflows exp -> 0
        warnings.simplefilter("ignore", RuntimeWarning)
        got = tri_moe.moe_experts(x, weights, index, experts)
    want = routed_reference(x, weights, index, experts)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-4 * want.abs().max().item())


def test_align_pads_each_expert_and_skips_empty_ones():
    index = torch.tensor([[2, 0], [2, 3], [0, 2]])
    rows, block_expert = tri_moe.align(index, 5, 4)
    assert block_expert.tolist() == [0, 2, 3]
    sentinel = 6
    assert rows.tolist() == [1, 4, sentinel, sentinel, 0, 2, 5, sentinel, 3, sentinel, sentinel, sentinel]


def test_moe_entry_point_routes_like_the_reference():
    gen = torch.Generator().manual_seed(3)
    experts = packed_experts(gen, 4, 64, 32)
    x = torch.randn(5, 64, generator=gen)
    router_w, router_b = torch.randn(4, 64, generator=gen), torch.randn(4, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = tri.moe(x, router_w, router_b, experts, 2)
    want = reference.moe(x.double(), router_w.double(), router_b.double(), experts, 2)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-4 * want.abs().max().item())


CASES = [  # Tq, Tk, k_offset, window
    (10, 10, 0, None), (10, 10, 0, 4), (20, 37, 0, 5),   # prefill, with window, ragged blocks
    (3, 40, 5, 8), (1, 70, 0, None), (1, 70, 3, 16),     # decode over a cache (offset slots)
]


@pytest.mark.parametrize("Tq,Tk,offset,window", CASES)
def test_attention_kernels_match_reference(Tq, Tk, offset, window):
    gen = torch.Generator().manual_seed(Tq * 100 + Tk)
    B, Hq, Hkv, D = 2, 4, 2, 16
    q = torch.randn(B, Tq, Hq, D, generator=gen)
    k, v = torch.randn(2, B, Tk, Hkv, D, generator=gen)
    sinks = torch.randn(Hq, generator=gen) * 3
    positions = (torch.arange(Tq) + offset + Tk - Tq)[None].repeat(B, 1)
    want = reference.attention(q, k, v, sinks, positions, offset, window, 0.3)
    flash = tri_attention.attention(q, k, v, sinks, positions, offset, window, 0.3)
    split = tri_attention.attention_decode(q, k, v, sinks, positions, offset, window, 0.3,
                                           split_len=32, block_n=16)
    torch.testing.assert_close(flash, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(split, want, rtol=1e-5, atol=1e-5)


def test_prepared_gpu_check_script_runs_small(capsys):
    gpu_check = importlib.import_module("agent.kernels.triton.gpu_check")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert gpu_check.main(["--small", "--json"]) == 0
    assert '"correct": true' in capsys.readouterr().out
