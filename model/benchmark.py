"""Load-memory and speed of the runtime on one checkpoint (a script, not a test).

    python -m agent.model.benchmark DIR [--dtype bf16|fp32] [--prompt N] [--decode N]
                                        [--reuse N] [--threads N]

Prints one JSON object: resident memory (VmRSS, VmHWM) after loading, after prefill and after
decoding; prefill and decode speed; the prefix-reuse numbers of a second call that extends the
first. Make DIR with `python -m agent.model.random --config 20b --out DIR`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def memory() -> dict[str, float]:
    """VmRSS and VmHWM (peak) of this process in GiB."""
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(line.split()[1]) / 2**20, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.model.benchmark")
    parser.add_argument("path")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--decode", type=int, default=8)
    parser.add_argument("--reuse", type=int, default=16, help="tokens appended for the 2nd call")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from agent.model import load

    report = {"path": args.path, "dtype": args.dtype, "threads": torch.get_num_threads(),
              "start": memory()}
    started = time.perf_counter()
    model = load(args.path, dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    report["load_s"] = round(time.perf_counter() - started, 2)
    report["loaded"] = memory()
    prompt = [(7 * i + 3) % model.config.vocab_size for i in range(args.prompt)]

    started = time.perf_counter()
    stream = model.generate(prompt, max_tokens=args.decode, temperature=0)
    first = next(stream)
    prefill = time.perf_counter() - started
    report["after_prefill"] = memory()
    started = time.perf_counter()
    tokens = [first.token] + [g.token for g in stream]
    decode = time.perf_counter() - started
    report["prefill_tokens_per_s"] = round(args.prompt / prefill, 2)
    report["decode_tokens_per_s"] = round((len(tokens) - 1) / decode, 3) if len(tokens) > 1 else None
    report["after_decode"] = memory()

    extended = prompt + tokens + [(5 * i + 1) % model.config.vocab_size for i in range(args.reuse)]
    started = time.perf_counter()
    next(model.generate(extended, max_tokens=1, temperature=0))
    report["second_call"] = {**model.last_usage, "seconds": round(time.perf_counter() - started, 2)}
    report["end"] = memory()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
