"""One prepared GPU check: Triton kernels against the reference, then their speed.

    python -m agent.kernels.triton.gpu_check [--experts 32] [--tokens 1 8 512 4096] [--json]

1. correctness at gpt-oss-20b shapes (H = I = 2880, 32 experts, top-4; 64 query / 8 kv heads
   of 64, window 128): the MoE kernels and both attention kernels against
   agent.kernels.reference on the same random inputs, bf16, within bf16 tolerance;
2. speed: MoE layer time for each --tokens count (decode: 1 and 8 rows; prefill: 512+), and the
   implied weight bandwidth / throughput.
Exits non-zero when a check fails. Model-level numbers: `python -m agent.bench --checkpoint
DIR` with the model loaded on CUDA is left to agent.model (load(..., device="cuda")).
On CPU it runs only under TRITON_INTERPRET=1 with --small, in float32 (the interpreter's
tl.dot mishandles bf16); the tests run it so.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from .. import PackedExperts, reference
from .attention import attention, attention_decode
from .moe import moe_experts


def random_experts(E, H, I, device, gen, dtype):
    def packed(rows, cols):
        blocks = torch.randint(0, 256, (E, rows, cols // 32, 16), dtype=torch.uint8, generator=gen)
        scales = torch.randint(119, 124, (E, rows, cols // 32), dtype=torch.uint8, generator=gen)
        return blocks.to(device), scales.to(device)
    gb, gs = packed(2 * I, H)
    db, ds = packed(H, I)
    bias = lambda n: (torch.randn(E, n, generator=gen) * 0.05).to(device, dtype)  # noqa: E731
    return PackedExperts(gb, gs, bias(2 * I), db, ds, bias(H))


def close(got, want, what):
    error = float((got.float() - want.float()).abs().max())
    scale = float(want.float().abs().max()) or 1.0
    ok = error <= 2e-2 * scale
    print(f"{'ok  ' if ok else 'FAIL'} {what}: max error {error:.3g} (max value {scale:.3g})")
    return ok


def check(device, H, I, E, heads, gen, dtype) -> bool:
    experts = random_experts(E, H, I, device, gen, dtype)
    router_w = (torch.randn(E, H, generator=gen) * H ** -0.5).to(device, dtype)
    router_b = torch.zeros(E, device=device, dtype=dtype)
    ok = True
    for tokens in (1, 5, 70):
        x = torch.randn(tokens, H, generator=gen).to(device, dtype)
        weights, index = reference.route(x, router_w, router_b, 4)
        got = moe_experts(x, weights, index, experts)
        want = reference.moe(x.float(), router_w.float(), router_b.float(), experts, 4)
        ok &= close(got, want, f"moe, {tokens} tokens")
    Hq, Hkv, D = heads
    for Tq, Tk, window in ((70, 70, None), (70, 70, 16), (1, 300, None), (1, 300, 128)):
        q = torch.randn(1, Tq, Hq, D, generator=gen).to(device, dtype)
        k, v = (torch.randn(2, 1, Tk, Hkv, D, generator=gen)).to(device, dtype)
        sinks = torch.randn(Hq, generator=gen).to(device)
        pos = (torch.arange(Tq) + Tk - Tq)[None].to(device)
        want = reference.attention(q, k, v, sinks, pos, 0, window)
        ok &= close(attention(q, k, v, sinks, pos, 0, window), want, f"flash attention {Tq}x{Tk} window {window}")
        ok &= close(attention_decode(q, k, v, sinks, pos, 0, window), want, f"split-K attention {Tq}x{Tk} window {window}")
    return ok


def timed(fn, device, repeat=20) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def speed(device, H, I, E, token_counts, gen, repeat, dtype) -> dict:
    experts = random_experts(E, H, I, device, gen, dtype)
    per_expert = (experts.gate_up_blocks[0].numel() + experts.down_blocks[0].numel()) * 17 // 16
    out = {}
    for tokens in token_counts:
        x = torch.randn(tokens, H, generator=gen).to(device, dtype)
        index = torch.stack([torch.randperm(E, generator=gen)[:4] for _ in range(tokens)]).to(device)
        weights = torch.full((tokens, 4), 0.25, device=device)
        seconds = timed(lambda: moe_experts(x, weights, index, experts), device, repeat)
        used = int(torch.unique(index).numel())
        out[f"moe_{tokens}_tokens_ms"] = round(seconds * 1e3, 3)
        out[f"moe_{tokens}_tokens_weight_gb_s"] = round(used * per_expert / seconds / 1e9, 1)
        out[f"moe_{tokens}_tokens_tflops"] = round(2 * tokens * 4 * 3 * H * I / seconds / 1e12, 2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.kernels.triton.gpu_check")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 512, 4096])
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--small", action="store_true", help="tiny shapes (interpreter smoke run)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    H = I = 64 if args.small else 2880
    heads = (4, 2, 16) if args.small else (64, 8, 64)
    E = 4 if args.small else args.experts
    # the interpreter's tl.dot mishandles bf16 (numpy has no bf16): float32 there
    dtype = torch.float32 if args.small else torch.bfloat16
    ok = check(device, H, I, E, heads, gen, dtype)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (interpreter)",
              "correct": bool(ok)}
    result.update(speed(device, H, I, E, [t for t in args.tokens if not args.small or t <= 8], gen,
                        1 if args.small else 20, dtype))
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
