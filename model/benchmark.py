"""Runtime benchmark on random gpt-oss checkpoints (a benchmark, not a test): the runtime's one
benchmark, next to what it measures (`python -m agent.bench` runs it too).

    python -m agent.bench [--config 20b|120b|tiny] [--layers N] [--checkpoint DIR]
                          [--prompt-tokens 512] [--decode-tokens 128] [--batch 8]
                          [--dense int8] [--threads N] [--json] [--ops]
    python -m agent.bench --vs-llamacpp [--llama-bench PATH] [--rounds 2] [...]
    python -m agent.bench --attention [--depths 0,2048,8192,16384]

Without --checkpoint a random checkpoint with the real shapes is written once by
agent.model.random into --out (default ~/.cache/gpt-oss-agent/bench/<config>-l<layers>) and
reused by later runs. Measured, in order: load time (including paging in the mapped weights
that decoding reads), time to first token of a first (cold) prompt, then time to first token
and prefill speed on a fresh --prompt-tokens prompt, decode speed at batch 1 (--decode-tokens
tokens, greedy), decode speed at --batch rows, resident memory (after loading, after the
prefill, at the end, and the peak), a second call that extends the first prompt (its reused and
computed tokens: prefix reuse), and the roofline: the
bytes of weights one decoded token must read (dense weights, the router, top_k experts' packed
MXFP4 bytes, the unembedding) divided by the machine's read bandwidth gives the fastest
possible decode; roofline_fraction is the measured decode speed over it. A VM's bandwidth
drifts by tens of percent within minutes, so it is measured right before and right after the
batch-1 decode (sustained reads for ~2 s each, in a child process so the buffer does not count
in our memory) and the roofline uses their mean; roofline_fraction_paired then alternates
--paired-rounds short probes with 8 decode steps each and gives the median of the rounds'
fractions, which the drift between probe and decode does not move. With --dense, the logits' error
against the checkpoint's own dtype is measured last. --ops adds a per-op breakdown of a batch-1
decode step (MoE, dense GEMVs, attention, the rest: ms and GB/s). --depths 0,2048,8192,16384
adds a row per context depth: prefill speed of --prompt-tokens new tokens on top of that many
cached ones, decode speed there, and the KV cache's memory (allocated, and what the tokens fill);
with --depth-rounds N, also each depth's prefill speed over 0-context's, the two timed in turns
N times (the machine's drift between two rows moves their ratio by a fifth).
--attention times only the CPU attention kernel of a full and a sliding layer at those depths
(prefill and decode), beside torch's flash kernel on the same tensors.

--vs-llamacpp: the same random checkpoint against llama.cpp on this machine, in one command.
The checkpoint is written once more as a GGUF (agent.model.gguf: experts MXFP4 as they are,
other matrices Q8_0, the types of the published gpt-oss GGUFs); then, --rounds times, back to
back: llama-bench (pp<prompt>, tg64, the same threads) and ours with bf16 and with int8 dense
weights (each in its own process, so neither holds the other's memory). Prints every run, the
ratios per round, the CPU model and flags, and the read bandwidth measured in the run.
llama-bench comes from kernels/llamacpp/build_llama_bench.sh (llama.cpp's source as vendored
by PyPI's llama-cpp-python sdist, clang, GGML_NATIVE); pass --llama-bench PATH otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# OMP_WAIT_POLICY=PASSIVE and a short GOMP_SPINCOUNT are already set by agent/__init__.py, which
# runs before this module (measured on 2 busy cores, 2-layer 20b: prefill 11 -> 103 tok/s,
# decode 5.3 -> 11-16 tok/s against endless spinning; the short spin then saves ~6 ms per 24-layer
# token of waking threads).
import torch

BANDWIDTH_PROBE = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from agent.model.benchmark import read_gb_s, read_probe
print(read_gb_s(*read_probe(), seconds=2.0, min_reads=3) / 1e9)
"""


def read_probe():
    """(buffer, read): 1 GiB in huge pages like the weights, paged in, and the kernel that
    streams it (C++ stream_read; without the kernels torch's reduction reads it too)."""
    from agent.kernels.cpu.build import extension
    from agent.model.memory import huge_page_empty
    try:
        read = extension().stream_read
    except Exception:
        read = lambda b: b.view(torch.int64).sum()  # noqa: E731
    buf = huge_page_empty((1 << 30,), torch.uint8).fill_(1)
    read(buf)  # first touch
    return buf, read


def read_gb_s(buf, read, seconds: float, min_reads: int) -> float:
    """Bytes per second of reading buf over and over, for at least `seconds` and `min_reads`."""
    reads, start = 0, time.perf_counter()
    while reads < min_reads or time.perf_counter() - start < seconds:
        read(buf)
        reads += 1
    return reads * buf.numel() / (time.perf_counter() - start)


def read_bandwidth_gb_s(threads: int) -> float:
    """Sustained read bandwidth: a 1 GiB buffer read over and over for ~2 s with `threads`
    threads (a child process, so the buffer does not count in our memory). Sustained, like
    decoding, not the best single burst."""
    out = subprocess.run([sys.executable, "-c", BANDWIDTH_PROBE, str(threads)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rss_gb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in GB (VmRSS, and the peak from
    getrusage, which counts the child processes' own memory apart)."""
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) * 1024 / 1e9
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return current, peak


def huge_pages_gb() -> float:
    """Memory of this process in transparent huge pages (AnonHugePages), in GB: the streamed
    weights should all be there (model/memory.py); a machine short of free 2 MiB pages (e.g.
    its page cache full of another engine's GGUF) leaves some in 4 KiB pages, which decode
    reads slower."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def tensors_of(value):
    """Every tensor in value (a tensor, a sequence, or an object holding tensors)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors_of(v)
    elif hasattr(value, "__dict__"):
        for v in vars(value).values():
            yield from tensors_of(v)


def nbytes(value) -> int:
    """Bytes of the tensors in value."""
    return sum(t.numel() * t.element_size() for t in tensors_of(value))


def page_in(model) -> None:
    """Touch one byte per page of every weight decoding reads: what the loader left mapped from
    the checkpoint pages in lazily, and a benchmark of prefill should not time the disk or page
    cache (load_s includes this). The embedding table is left alone: tokens read one row each, so only the rows of
    tokens seen become resident (paging all of it in would add 1.16 GB no run ever reads)."""
    embed = {t.data_ptr() for t in tensors_of(model.embed)}
    for t in tensors_of(model):
        if t.numel() and t.data_ptr() not in embed:
            t.reshape(-1).view(torch.uint8)[::4096].sum()


def weight_bytes_per_token(model) -> int:
    """Bytes of weights one batch-1 decode step reads: everything but the embedding table
    (one row) and the unselected experts."""
    c = model.config
    total = nbytes(model.unembed) + nbytes(model.norm) + nbytes(model.embed) // c.vocab_size
    for layer in model.layers:
        for name, value in vars(layer).items():
            share = c.num_experts_per_tok / layer.experts.num_experts if name == "experts" else 1
            total += int(nbytes(value) * share)
    return total


def default_checkpoint(config: str, layers: int | None, out: Path | None) -> Path:
    from agent.model.config import preset
    from agent.model.random import write_random

    cfg = preset(config, num_hidden_layers=layers)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpt-oss-agent" / "bench"
    folder = out or base / f"{config}-l{cfg.num_hidden_layers}"
    if not (folder / "config.json").exists():
        print(f"writing a random {config} checkpoint ({cfg.num_hidden_layers} layers) to {folder}",
              file=sys.stderr)
        write_random(folder, cfg)
    return folder


def run(args) -> dict:
    from agent.model import load
    from agent.model.cache import KVCache

    torch.set_num_threads(args.threads)
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
              "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
              "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", ""),
              "load_average": round(os.getloadavg()[0], 2), "torch": torch.__version__,
              **cpu_description()}
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint(args.config, args.layers, args.out)
    result["checkpoint"] = str(path)

    start = time.perf_counter()
    model = load(path, **({"dense": args.dense} if args.dense else {}))
    page_in(model)
    result["load_s"] = round(time.perf_counter() - start, 3)
    result["rss_loaded_gb"] = round(rss_gb()[0], 2)
    result["huge_pages_gb"] = round(huge_pages_gb(), 2)
    c = model.config
    result.update(layers=c.num_hidden_layers, dtype=str(model.dtype).replace("torch.", ""),
                  dense=args.dense or "as loaded")
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, c.vocab_size, (args.prompt_tokens,), generator=gen).tolist()

    # A first prompt pays one-off costs (oneDNN builds a kernel for each new matmul shape, and
    # the experts' row counts vary); it is reported as ttft_cold_s, then a fresh prompt is timed.
    start = time.perf_counter()
    for _ in model.generate(prompt[::-1], max_tokens=1, temperature=0.0):
        pass
    result["ttft_cold_s"] = round(time.perf_counter() - start, 3)
    model.reset()

    # batch 1: time to first token (= prefill + one projection), then the decode steps;
    # the bandwidth with every core (the roofline does not shrink with --threads) around them
    bandwidth_before = read_bandwidth_gb_s(os.cpu_count() or 1)
    stamps = []
    start = time.perf_counter()
    for _ in model.generate(prompt, max_tokens=args.decode_tokens + 1, temperature=0.0,
                            lookahead=0):  # one token per pass, as llama-bench's tg
        stamps.append(time.perf_counter())
    ttft = stamps[0] - start
    result["ttft_s"] = round(ttft, 3)
    result["prefill_tok_s"] = round(args.prompt_tokens / ttft, 2)
    decode_s = stamps[-1] - stamps[0]
    result["decode_tok_s"] = round((len(stamps) - 1) / decode_s, 3) if len(stamps) > 1 else 0.0
    result["rss_decode_gb"] = round(rss_gb()[0], 2)
    result["draft_check_ms"] = draft_check_ms(model)
    # prefix reuse: the same conversation one turn later reuses the cached prompt and answer
    extended = prompt + [int(t) for t in model.cache.tokens[0][len(prompt):]] + prompt[:16]
    start = time.perf_counter()
    for _ in model.generate(extended, max_tokens=1, temperature=0.0):
        pass
    result["second_call"] = {**{k: model.last_usage[k] for k in ("reused_tokens", "computed_tokens")},
                             "ttft_s": round(time.perf_counter() - start, 3)}
    bandwidth_after = read_bandwidth_gb_s(os.cpu_count() or 1)
    result["read_bandwidth_before_after_gb_s"] = [round(bandwidth_before, 2),
                                                  round(bandwidth_after, 2)]
    result["read_bandwidth_gb_s"] = round((bandwidth_before + bandwidth_after) / 2, 2)

    if args.batch > 1:
        rows = [torch.randint(0, c.vocab_size, (32,), generator=gen).tolist() for _ in range(args.batch)]
        with torch.inference_mode():
            cache = KVCache(c, args.batch, model.dtype, model.device)
            hidden = model.forward(rows, cache)[:, -1]
            steps = max(8, args.decode_tokens // 4)

            def decode(steps, hidden):
                for _ in range(steps):
                    tokens = model.project(hidden).argmax(-1).tolist()
                    hidden = model.forward([[t] for t in tokens], cache)[:, -1]
                return hidden

            start = time.perf_counter()
            hidden = decode(steps, hidden)
            result[f"decode_batch{args.batch}_tok_s"] = round(
                steps * args.batch / (time.perf_counter() - start), 2)
            if args.ops:  # where a batch step's time goes (ms per step of all rows)
                with ops_timed(model) as timed:
                    start = time.perf_counter()
                    decode(8, hidden)
                    wall = time.perf_counter() - start
                result[f"ops_batch{args.batch}"] = op_table(*timed, wall, 8)

    per_token = weight_bytes_per_token(model)
    roofline = result["read_bandwidth_gb_s"] * 1e9 / per_token
    result["weight_bytes_per_token"] = per_token
    result["weight_gb_per_token"] = round(per_token / 1e9, 3)
    result["roofline_tok_s"] = round(roofline, 2)
    result["roofline_fraction"] = round(result["decode_tok_s"] / roofline, 3)
    if args.paired_rounds:
        result["roofline_fraction_paired"] = paired_roofline(model, per_token, args.paired_rounds)
    result["peak_rss_gb"] = round(rss_gb()[1], 2)
    if args.depths:
        result["depths"] = at_depths(model, args.depths, args.prompt_tokens,
                                     min(args.decode_tokens, 32), gen)
        if args.depth_rounds:
            result["depth_ratio_paired"] = [
                paired_depth_ratio(model, depth, args.prompt_tokens, args.depth_rounds, gen)
                for depth in args.depths if depth]
            print(json.dumps(result["depth_ratio_paired"]), file=sys.stderr)
    if args.ops:
        model.reset()
        result["ops"] = op_breakdown(model, prompt[:64])
    if args.dense and not args.no_logit_error:  # the price of the dense mode: its logits against the checkpoint's own dtype
        # several prompts: on random weights one prompt's error is one draw from a wide spread
        # (2 layers: rms 0.07-0.17 between prompts), too wide to compare two builds by
        prompts = [prompt[:64]] + [torch.randint(0, c.vocab_size, (64,), generator=gen).tolist()
                                   for _ in range(args.logit_prompts - 1)]
        got = [model.logits(p) for p in prompts]
        del model  # two resident 20b models would not fit in 24 GB
        gc.collect()
        reference = load(path)
        result.update(logit_error(got, [reference.logits(p) for p in prompts]))
    return result


@torch.inference_mode()
def draft_check_ms(model, drafts=(0, 1, 3, 7), repeats: int = 3) -> dict:
    """ms for one decode pass over the last token plus k drafted tokens (model/lookup.py), at
    the session cache's position: a pass that keeps a tokens costs pass(k) / pass(0) single
    steps, so drafting wins when a + 1 exceeds that ratio."""
    cache = model.cache
    length = cache.length()
    earlier = cache.tokens[0][-max(drafts) - 1:]  # distinct tokens: the experts they choose vary
    out = {}
    for k in drafts:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.project(model.forward([earlier[-k - 1:]], cache)[0])
            times.append(time.perf_counter() - start)
            cache.truncate(0, length)
        out[k] = round(1000 * min(times), 2)
    return out


def paired_roofline(model, per_token: int, rounds: int, tokens: int = 8) -> dict:
    """Decode speed over the read bandwidth measured right beside it, round by round: a 1 GiB
    buffer read for ~0.5 s, then `tokens` decode steps, each round's fraction of its own
    bandwidth. The machine's bandwidth drifts by half between runs of a few minutes (shared
    VMs), so a fraction from two probes around one long decode moves with it; paired rounds
    show the kernels' share of what the memory gave at that moment (median and range)."""
    buf, read = read_probe()
    fractions, gbs = [], []
    for _ in range(rounds):
        bandwidth = read_gb_s(buf, read, seconds=0.5, min_reads=2)
        stamps = []
        for _ in model.generate(list(model.cache.tokens[0]), max_tokens=tokens + 1,
                                temperature=0.0, lookahead=0):
            stamps.append(time.perf_counter())
        tok_s = tokens / (stamps[-1] - stamps[0])
        fractions.append(tok_s * per_token / bandwidth)
        gbs.append(bandwidth / 1e9)
    del buf
    return {"median": round(statistics.median(fractions), 3),
            "range": [round(min(fractions), 3), round(max(fractions), 3)],
            "bandwidth_gb_s": [round(min(gbs), 1), round(max(gbs), 1)], "rounds": rounds}


def at_depths(model, depths: list[int], new_tokens: int, decode_tokens: int, gen) -> list[dict]:
    """Per depth d: d cached tokens (prefilled untimed), then `new_tokens` more prefilled and
    `decode_tokens` decoded on top of them, as an agent's next step after a tool result."""
    c, rows = model.config, []
    per_token = c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * model.dtype.itemsize
    for depth in depths:
        model.reset()
        tokens = torch.randint(0, c.vocab_size, (depth + new_tokens,), generator=gen).tolist()
        if depth:
            for _ in model.generate(tokens[:depth], max_tokens=1, temperature=0.0):
                pass
        stamps, start = [], time.perf_counter()
        for _ in model.generate(tokens, max_tokens=decode_tokens + 1, temperature=0.0):
            stamps.append(time.perf_counter())
        rows.append({"depth": depth, "reused_tokens": model.last_usage["reused_tokens"],
                     "prefill_tok_s": round(new_tokens / (stamps[0] - start), 2),
                     "decode_tok_s": round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 3),
                     "kv_cache_allocated_gb": round(model.cache.nbytes() / 1e9, 3),
                     "kv_cache_filled_gb": round((depth + new_tokens) * per_token / 1e9, 3)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    model.reset()
    return rows


def paired_depth_ratio(model, depth: int, new_tokens: int, rounds: int, gen) -> dict:
    """Prefill of `new_tokens` on top of `depth` cached tokens over the same tokens on top of
    none, timed in alternation (one of each per round, the deep cache filled once and cut back
    to `depth` each time), so that the machine's drift between them cancels: the median of the
    rounds' speed ratios, and each side's median tok/s."""
    from agent.model.cache import KVCache
    c = model.config
    tokens = torch.randint(0, c.vocab_size, (depth + new_tokens,), generator=gen).tolist()
    deep = KVCache(c, 1, model.dtype, model.device)
    ratios, shallow_tok_s, deep_tok_s = [], [], []

    def seconds(cache) -> float:
        started = time.perf_counter()
        model.forward([tokens[depth:]], cache)
        return time.perf_counter() - started

    with torch.inference_mode():
        model.forward([tokens[:depth]], deep)  # in the runtime's prefill steps
        for _ in range(rounds):
            deep.truncate(0, depth)
            times = [seconds(KVCache(c, 1, model.dtype, model.device)), seconds(deep)]
            ratios.append(times[0] / times[1])
            shallow_tok_s.append(new_tokens / times[0])
            deep_tok_s.append(new_tokens / times[1])
    return {"depth": depth, "rounds": rounds, "ratio_median": round(statistics.median(ratios), 3),
            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "prefill_tok_s_at_0": round(statistics.median(shallow_tok_s), 2),
            "prefill_tok_s_at_depth": round(statistics.median(deep_tok_s), 2)}


def logit_error(got: list[torch.Tensor], want: list[torch.Tensor]) -> dict:
    """Logits of the model under test against the checkpoint's own dtype, per prompt the same
    tokens (taken after peak memory was): pooled over all prompts, and the range of the
    prompts' own rms errors (sums per prompt: no copy of all prompts' logits at once)."""
    error_sq = reference_sq = largest = agree = tokens = 0.0
    each = []
    for a, b in zip(got, want):
        diff = a - b
        e, r = float(diff.pow(2).sum()), float(b.pow(2).sum())
        each.append((e / r) ** 0.5)
        error_sq, reference_sq = error_sq + e, reference_sq + r
        largest = max(largest, float(diff.abs().max()))
        agree += float((a.argmax(-1) == b.argmax(-1)).sum())
        tokens += a.shape[0]
    return {"logit_prompts": len(each),
            "logit_max_abs_error": round(largest, 4),
            "logit_rms_error_over_rms": round((error_sq / reference_sq) ** 0.5, 5),
            "logit_rms_error_per_prompt": [round(min(each), 5), round(max(each), 5)],
            "top1_agreement": round(agree / tokens, 4)}


def cpu_description() -> dict:
    """The CPU's model name and the instruction-set flags the kernels care about."""
    from agent.kernels.cpu.build import chosen_variant, cpu_flags

    name = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            break
    wanted = ("avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
    variant = chosen_variant()
    return {"cpu": name, "cpu_flags": [f for f in wanted if f in cpu_flags()], "cpus": os.cpu_count(),
            "kernels": variant.name if variant else "reference"}


@contextlib.contextmanager
def ops_timed(model):
    """Wraps agent.kernels' moe, linear and attention while inside: yields (seconds, bytes of
    weights read) per op kind, summed over the calls. The experts' bytes count the experts the
    router chose (recomputed from its logits, outside the timed call)."""
    from agent import kernels
    from agent.kernels import PackedExperts

    seconds = {"moe": 0.0, "dense": 0.0, "unembedding": 0.0, "attention": 0.0}
    moved = dict.fromkeys(seconds, 0)
    measuring = [0.0]  # the wrappers' own time, which no op kind should carry
    unembed = {t.data_ptr() for t in tensors_of(model.unembed)}
    originals = {name: getattr(kernels, name) for name in ("moe", "linear", "attention")}

    def timed(name, kind_of):
        def call(*args, **kwargs):
            start = time.perf_counter()
            out = originals[name](*args, **kwargs)
            elapsed = time.perf_counter() - start
            kind, size = kind_of(*args)
            seconds[kind] += elapsed
            moved[kind] += size
            measuring[0] += time.perf_counter() - start - elapsed
            return out
        return call

    def moe_kind(x, router_weight, router_bias, experts, top_k, *rest):
        if not isinstance(experts, PackedExperts):
            return "moe", nbytes(router_weight)
        logits = torch.nn.functional.linear(x.reshape(-1, x.shape[-1]).float(), router_weight.float(),
                                            router_bias.float())
        chosen = logits.topk(top_k, dim=-1).indices.unique().numel()
        return "moe", int(nbytes(experts) * chosen / experts.num_experts) + nbytes(router_weight)

    def linear_kind(x, weight, bias=None):
        first = next(tensors_of(weight))
        return ("unembedding" if first.data_ptr() in unembed else "dense"), nbytes(weight)

    kernels.moe, kernels.linear = timed("moe", moe_kind), timed("linear", linear_kind)
    kernels.attention = timed("attention", lambda *a: ("attention", 0))
    try:
        yield seconds, moved, measuring
    finally:
        for name, function in originals.items():
            setattr(kernels, name, function)


def op_table(seconds: dict, moved: dict, measuring: list[float], wall: float, steps: int) -> dict:
    """ms per step of each op kind, the GB/s of the weights it read, the rest ("other") and the
    whole step (the measurement's own time taken out)."""
    wall -= measuring[0]
    out = {f"{k}_ms": round(1e3 * v / steps, 2) for k, v in seconds.items()}
    for k, v in seconds.items():
        if moved[k] and v > 0:
            out[f"{k}_gb_s"] = round(moved[k] / v / 1e9, 1)
    out["other_ms"] = round(1e3 * (wall - sum(seconds.values())) / steps, 2)
    out["step_ms"] = round(1e3 * wall / steps, 2)
    return out


def op_breakdown(model, prompt: list[int], steps: int = 16) -> dict:
    """op_table over `steps` batch-1 decode steps after `prompt` (ms per token)."""
    for _ in model.generate(prompt, max_tokens=1, temperature=0.0):
        pass  # the prompt goes into the cache first
    with ops_timed(model) as timed:
        start = time.perf_counter()
        for _ in model.generate(prompt, max_tokens=steps + 1, temperature=0.0):
            pass  # the prompt is reused from the cache: what is timed is the decode
        wall = time.perf_counter() - start
    return op_table(*timed, wall, steps + 1)


def find_llama_binary(name: str, path: str | None, env: str | None = None) -> Path:
    """llama.cpp's `name` binary (llama-bench, llama-server): `path` when given, else $`env`,
    else on PATH, else where the build script puts it."""
    import shutil

    candidates = [path] if path else [os.environ.get(env) if env else None, shutil.which(name),
                                      f"/work/llama/build/bin/{name}"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    script = Path(__file__).parents[1] / "kernels" / "llamacpp" / "build_llama_bench.sh"
    raise SystemExit(f"{name} not found ({path or 'not on PATH or in /work/llama/build/bin'}); "
                     f"build it with `sh {script} [DIR]` and pass --{name} DIR/build/bin/{name}")


def gguf_for(path: Path) -> Path:
    """The checkpoint as a GGUF beside it, for llama.cpp (written once, again if it changed)."""
    gguf = path.parent / f"{path.name}.gguf"
    if not gguf.exists() or gguf.stat().st_mtime < (path / "config.json").stat().st_mtime:
        from agent.model.gguf import write_gguf

        print(f"writing {gguf}", file=sys.stderr)
        write_gguf(path, gguf)
    return gguf


def run_llama_bench(binary: Path, gguf: Path, prompt: int, decode: int, threads: int,
                    depths: list[int] | None = None) -> dict:
    """llama-bench pp<prompt> and tg<decode> (one repetition each) -> tok/s of both; with
    `depths`, also at each depth (llama-bench -d: that many tokens in the cache first)."""
    command = [str(binary), "-m", str(gguf), "-p", str(prompt), "-n", str(decode),
               "-t", str(threads), "-r", "1", "-o", "json"]
    if depths:
        command += ["-d", ",".join(str(d) for d in depths)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"llama-bench failed: {out.stderr.strip().splitlines()[-1:]}")
    rows = json.loads(out.stdout)
    result = {"build": rows[0].get("build_commit", "")}
    for row in rows:
        key = "prefill_tok_s" if row["n_gen"] == 0 else "decode_tok_s"
        depth = int(row.get("n_depth", 0))
        if depth == 0:
            result[key] = round(float(row["avg_ts"]), 2)
        if depths:
            result.setdefault("depths", {}).setdefault(depth, {})[key] = round(float(row["avg_ts"]), 2)
    return result


def vs_llamacpp(args) -> dict:
    """Rounds of llama-bench and ours (bf16, int8 dense) back to back on one checkpoint."""
    binary = find_llama_binary("llama-bench", args.llama_bench)
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint(args.config, args.layers, args.out)
    gguf = gguf_for(path)
    report = {**cpu_description(), "threads": args.threads, "checkpoint": str(path), "gguf": str(gguf),
              "llama_bench": str(binary), "command": " ".join(["python -m agent.bench", *sys.argv[1:]]),
              "rounds": []}
    ours_args = ["--checkpoint", str(path), "--json", "--threads", str(args.threads),
                 "--prompt-tokens", str(args.prompt_tokens), "--decode-tokens", str(args.decode_tokens),
                 "--batch", str(args.batch)] + (["--ops"] if args.ops else []) + \
        (["--depths", ",".join(map(str, args.depths))] if args.depths else [])
    for number in range(args.rounds):
        entry = {"load_average": round(os.getloadavg()[0], 2),
                 "llama.cpp": run_llama_bench(binary, gguf, args.prompt_tokens, args.decode_tokens,
                                              args.threads, args.depths)}
        for mode, extra in (("bf16", []), ("int8", ["--dense", "int8", "--no-logit-error"])):
            out = subprocess.run([sys.executable, "-m", "agent.bench", *ours_args, *extra],
                                 capture_output=True, text=True, timeout=3600)
            if out.returncode != 0:
                raise SystemExit(f"agent.bench ({mode}) failed: {out.stderr.strip()[-500:]}")
            ours = json.loads(out.stdout.strip().splitlines()[-1])
            keep = ("prefill_tok_s", "decode_tok_s", f"decode_batch{args.batch}_tok_s", "roofline_tok_s",
                    "roofline_fraction", "roofline_fraction_paired", "read_bandwidth_before_after_gb_s",
                    "weight_gb_per_token",
                    "peak_rss_gb", "huge_pages_gb", "ops", f"ops_batch{args.batch}", "depths")
            entry[f"ours_{mode}"] = {k: ours[k] for k in keep if k in ours}
            for what in ("prefill_tok_s", "decode_tok_s"):
                theirs = entry["llama.cpp"].get(what)
                if theirs:
                    entry[f"ratio_{mode}_{what.split('_')[0]}"] = round(ours[what] / theirs, 2)
                for row in ours.get("depths", ()):
                    theirs = entry["llama.cpp"].get("depths", {}).get(row["depth"], {}).get(what)
                    if theirs:
                        row[f"ratio_{what.split('_')[0]}"] = round(row[what] / theirs, 2)
        report["rounds"].append(entry)
        print(json.dumps(entry), file=sys.stderr)
    return report


def attention_table(depths: list[int], new_tokens: int, threads: int) -> list[dict]:
    """The CPU attention of one full and one sliding layer at 20b shapes (64 query heads, 8 kv
    heads, head dim 64, window 128, bf16), on top of each depth of cached keys: prefill of
    new_tokens queries and decode of one, ms and GFLOP/s, ours (the runtime's bf16 kernel)
    beside torch's flash kernel (the fallback path) on the same tensors."""
    import importlib

    from agent import kernels
    flash = importlib.import_module("agent.kernels.cpu.attention")._flash_attention
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for depth in depths:
        for queries in (new_tokens, 1):
            keys = depth + queries
            q = torch.randn(1, queries, 64, 64, generator=gen).to(torch.bfloat16)
            k, v = torch.randn(2, 1, keys, 8, 64, generator=gen).to(torch.bfloat16)
            sinks, positions = torch.randn(64, generator=gen), torch.arange(depth, keys)[None]
            for window in (None, 128):
                seen = (positions[0] + 1).clamp(max=window or keys)  # keys each query sees
                flop = 4 * 64 * 64 * float(seen.sum())
                row = {"depth": depth, "queries": queries,
                       "layer": "full" if window is None else "sliding"}
                args = (q, k, v, sinks, positions, 0, window, 0.125)
                for name, call in (("ours", lambda: kernels.attention(*args)),
                                   ("torch_flash", lambda: flash(*args))):
                    call()
                    times = []
                    while len(times) < 3 or sum(times) < 0.5:
                        start = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - start)
                    best = sorted(times)[len(times) // 2]
                    row[f"{name}_ms"] = round(best * 1e3, 3)
                    row[f"{name}_gflop_s"] = round(flop / best / 1e9, 1)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    return rows


def _depths(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError("a comma-separated list of token counts >= 0")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=["20b", "120b", "tiny"], default="20b")
    parser.add_argument("--layers", type=int, default=None, help="layers (default: the preset's)")
    parser.add_argument("--checkpoint", default=None, help="an existing checkpoint folder")
    parser.add_argument("--out", type=Path, default=None, help="where to write the random checkpoint")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="rows for the batched decode (<= 1: skip)")
    parser.add_argument("--dense", default=None, help='dense-weight mode passed to load (e.g. "int8")')
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ops", action="store_true", help="per-op breakdown of a decode step")
    parser.add_argument("--paired-rounds", type=int, default=6,
                        help="rounds of (bandwidth probe, 8 decode steps) for "
                             "roofline_fraction_paired (0: skip)")
    parser.add_argument("--logit-prompts", type=int, default=8,
                        help="prompts of 64 tokens for --dense's logit error (default 8)")
    parser.add_argument("--no-logit-error", action="store_true",
                        help="with --dense: skip the logit comparison (it loads a second model)")
    parser.add_argument("--vs-llamacpp", action="store_true",
                        help="llama.cpp's llama-bench and ours back to back on the same checkpoint")
    parser.add_argument("--llama-bench", default=None, help="path of llama.cpp's llama-bench")
    parser.add_argument("--rounds", type=int, default=2, help="with --vs-llamacpp: rounds of both")
    parser.add_argument("--depths", type=_depths, default=None, metavar="0,2048,8192,16384",
                        help="prefill of --prompt-tokens on top of each depth of cached tokens, "
                             "and decode there")
    parser.add_argument("--depth-rounds", type=int, default=0,
                        help="with --depths: rounds of (prefill at 0, prefill at the depth) for "
                             "depth_ratio_paired (the depth's speed over 0-context's, drift "
                             "cancelled); 0: skip")
    parser.add_argument("--attention", action="store_true",
                        help="only the CPU attention kernel at 20b shapes at each --depths, ours "
                             "beside torch's flash kernel")
    args = parser.parse_args(argv)
    if args.prompt_tokens < 1 or args.decode_tokens < 1:
        parser.error("--prompt-tokens and --decode-tokens must be >= 1")
    if args.attention:
        rows = attention_table(args.depths or [0, 2048, 8192, 16384], args.prompt_tokens, args.threads)
        print(json.dumps({**cpu_description(), "attention": rows}, indent=None if args.json else 1))
        return 0
    if args.vs_llamacpp:
        if "--decode-tokens" not in (argv if argv is not None else sys.argv):
            args.decode_tokens = 64  # llama-bench's tg64
        print(json.dumps(vs_llamacpp(args), indent=None if args.json else 1))
        return 0
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
