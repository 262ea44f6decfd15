"""Train the nano model on freshly sampled Harmony transcripts (reproducible: fixed seed).

    python -m agent.model.nano.train --out /tmp/nano_run     # the shipped model's recipe

Every batch is new data (data.sample_batch), so there is no epoch and no overfitting to a
fixed set; batch i comes from its own seed (`--seed`, i), so `--workers` processes sampling
ahead give the same batches as the training process alone. `--device cuda` (with `--bf16`
autocast) trains on a GPU, where the workers keep it fed (model/nano/gpu_stage.sh). The
schedule (warmup, cosine decay) runs over `--steps` steps (reproducible), or else over
`--minutes` of wall-clock time (`--clock cpu`: of this process's CPU time), so the run ends on
time whatever the machine's speed; from `--quant-from` of the way on, the experts are
fake-quantized to MXFP4. A compact checkpoint (config.json + model.safetensors, see
export.py) is written every `--save-every` minutes and at the end, so a partial run ships;
`--init` continues from one.
"""
from __future__ import annotations

import argparse
import collections
import heapq
import json
import math
import multiprocessing
import random
import sys
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from agent.harmony import tokenizer as tk
from agent.harmony.closed_vocabulary import BYTE_TOKENS, ClosedVocabulary, merge_parts
from agent.model.nano import data, export
from agent.model.nano.modeling import NanoGptOss, local_rows, nano_config


MIN_COUNT = 20  # occurrences (in --vocab-examples transcripts) that earn a token its own row


def build_vocab(examples: int, seed: int, realistic_share: float = 0.0,
                min_count: int = MIN_COUNT) -> torch.Tensor:
    """The closed vocabulary of the data mix (agent.harmony.closed_vocabulary): the 256 byte
    tokens, the Harmony special tokens, every 1-3 digit number, and each token that occurs
    `min_count` times in `examples` sampled transcripts once the rarer ones are spelled (a
    token below the count passes its count to its merge parts, so the pieces of rare words,
    names and codes earn rows: those are what the model copies them with)."""
    counts: Counter[int] = Counter()
    for ex in data.generate(examples, seed, realistic_share):
        counts.update(ex["prefix"])
        counts.update(ex["tokens"])
    kept = set(BYTE_TOKENS) | set(tk.NAMED_SPECIAL_TOKENS.values())
    for n in range(1000):
        for text in (str(n), f"{n:02d}", f"{n:03d}"):
            kept.update(tk.encode_text(text))
    pending = [-token for token in counts]  # largest id first: merge parts are smaller ids
    heapq.heapify(pending)
    while pending:
        token = -heapq.heappop(pending)
        if token in kept or token >= tk.O200K_RANKS or counts[token] >= min_count:
            kept.add(token)
            continue
        for part in merge_parts(token):
            if part not in counts:
                heapq.heappush(pending, -part)
            counts[part] += counts[token]
    return torch.tensor(sorted(kept))


def spelled(vocabulary: ClosedVocabulary, tokens: list[int], mask: list[bool]
            ) -> tuple[list[int], list[bool]]:
    """A transcript in the closed vocabulary; each piece of a spelled token keeps its mask."""
    out, out_mask = [], []
    for token, learn in zip(tokens, mask):
        pieces = vocabulary.spell([token])
        out += pieces
        out_mask += [learn] * len(pieces)
    return out, out_mask


def make_batch(vocabulary: ClosedVocabulary, lookup: torch.Tensor, rng: random.Random,
               size: int, pool: int = 1, realistic_share: float = 0.0,
               session_share: float = 0.0, effort_weights=None):
    """-> (prefix [P], inputs [B,S], targets [B,S], loss mask [B,S]) in local ids."""
    prefix, rows = data.sample_batch(rng, size * pool, realistic_share, session_share,
                                     effort_weights)
    prefix = vocabulary.spell(prefix)
    rows = [(*spelled(vocabulary, tokens, mask), task) for tokens, mask, task in rows]
    if pool > 1:  # a window of similar lengths from the sorted pool: less padding
        rows.sort(key=lambda r: len(r[0]))
        start = rng.randrange(max(1, len(rows) - size + 1))
        rows = rows[start:start + size]
    length = max(len(r[0]) for r in rows)
    inputs = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, (tokens, loss_mask, _) in enumerate(rows):
        inputs[i, :len(tokens)] = lookup[torch.tensor(tokens)]
        mask[i, :len(tokens)] = torch.tensor(loss_mask)
    # position t predicts token t+1
    targets = torch.roll(inputs, -1, dims=1)
    mask = torch.roll(mask, -1, dims=1)
    mask[:, -1] = False
    return lookup[torch.tensor(prefix)], inputs, targets, mask


class Batches:
    """Batch i of a run, drawn from its own seed: in this process, or sampled ahead by
    `workers` processes (the same batches; a GPU step is shorter than sampling one)."""

    def __init__(self, vocab: torch.Tensor, seed: int, workers: int = 0, **recipe):
        self.seed, self.recipe, self.pending = seed, recipe, collections.deque()
        self.pool = None
        if workers > 0:
            # spawn: the trainer may hold a CUDA context, which a forked child cannot use
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(workers, _worker_start, (vocab.tolist(),))
            self.ahead = 2 * workers
        else:
            _worker_start(vocab.tolist())

    def get(self, step: int):
        if self.pool is None:
            return _batch(self.seed, step, self.recipe)
        while len(self.pending) < self.ahead:
            queued = step + len(self.pending)
            self.pending.append(self.pool.apply_async(_batch, (self.seed, queued, self.recipe)))
        return self.pending.popleft().get()

    def close(self) -> None:
        """Waits for the batches sampled ahead, then for the workers to exit (terminating a pool
        with tasks in flight races its result thread: "Cannot have cache with result_handler
        not alive")."""
        if self.pool is not None:
            for batch in self.pending:
                batch.wait()
            self.pending.clear()
            self.pool.close()
            self.pool.join()


_WORKER: dict = {}  # the vocabulary a batch process spells with (set by _worker_start)


def _worker_start(vocab_ids: list[int]) -> None:
    torch.set_num_threads(1)
    _WORKER.update(vocabulary=ClosedVocabulary(vocab_ids),
                   lookup=local_rows(torch.tensor(vocab_ids)))


def _batch(seed: int, step: int, recipe: dict):
    rng = random.Random(f"{seed}:{step}")
    return make_batch(_WORKER["vocabulary"], _WORKER["lookup"], rng, **recipe)


def learning_rate(progress: float, peak: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return peak * progress / warmup
    decay = (progress - warmup) / (1 - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(decay, 1.0))))


def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    vocab = build_vocab(args.vocab_examples, args.seed + 1, args.realistic,
                        args.min_count)
    if args.init:  # continue from an exported checkpoint: its weights, this mix's vocabulary
        model = revocabulary(export.load(args.init), vocab, args.tie)
        model.train()
        model.set_fake_quant(False)
        cfg = model.cfg
    else:
        cfg = nano_config(hidden_size=args.hidden, intermediate_size=args.intermediate,
                          num_hidden_layers=args.layers, num_attention_heads=args.heads,
                          num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
                          num_local_experts=args.experts, num_experts_per_tok=args.top_k)
        model = NanoGptOss(cfg, vocab, tie=args.tie)
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    log(out, f"vocab {len(vocab)} ids, {params / 1e6:.2f}M parameters, config {cfg}, "
             f"device {device}, setup {time.time() - start:.0f}s")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    batches = Batches(vocab, args.seed, args.workers, size=args.batch, pool=args.pool,
                      realistic_share=args.realistic, session_share=args.sessions,
                      effort_weights=args.efforts)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16
                else nullcontext())
    budget = args.minutes * 60
    # --clock cpu counts this process's CPU time: a run paused (SIGSTOP) around benchmarks, or
    # sharing its core, keeps its whole schedule
    clock = time.process_time if args.clock == "cpu" else time.time
    start = clock() - (time.time() - start)
    train_start = clock()
    last_save = time.time()
    step, tokens_seen, running = 0, 0, None
    while True:
        # the schedule follows steps when a step budget is given (bit-reproducible), else time
        progress = step / args.steps if args.steps else (clock() - train_start) / budget
        if progress >= 1.0 or clock() - start >= budget:  # the cap counts setup too
            break
        if not model.layers[0].mlp.fake_quant and progress >= args.quant_from:
            model.set_fake_quant(True)
            log(out, f"step {step}: experts fake-quantized to MXFP4 from now on")
        for group in opt.param_groups:
            group["lr"] = learning_rate(progress, args.lr, args.warmup)
        prefix, inputs, targets, mask = (t.to(device, non_blocking=True)
                                         for t in batches.get(step))
        with autocast:
            hidden = model(prefix, inputs)
            logits = model.local_logits(hidden[mask])
        loss = F.cross_entropy(logits.float(), targets[mask])
        aux = sum(layer.mlp.balance_loss for layer in model.layers)
        opt.zero_grad(set_to_none=True)
        (loss + args.balance * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += inputs.numel() + prefix.numel()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % args.log_every == 0:
            elapsed = clock() - train_start
            log(out, f"step {step} loss {running:.4f} aux {aux.item():.3f} "
                     f"lr {opt.param_groups[0]['lr']:.2e} tok/s {tokens_seen / elapsed:.0f} "
                     f"elapsed {elapsed / 60:.1f}m")
        if time.time() - last_save > args.save_every * 60:
            save(model, out, step, running, clock() - train_start)
            last_save = time.time()
    batches.close()
    save(model, out, step, running, clock() - train_start)
    log(out, f"done: {step} steps, {(clock() - start) / 60:.1f} min in all ({args.clock} time)")


def revocabulary(base: NanoGptOss, vocab: torch.Tensor, tie: bool) -> NanoGptOss:
    """`base` over the vocabulary `vocab`: the rows `base` trained are kept, the others drawn
    at the trained rows' scale (a zero row is one `base` never trained)."""
    model = NanoGptOss(base.cfg, vocab, tie=tie)
    with torch.no_grad():
        trained = base.vocab_ids[base.embed.abs().sum(1) > 0]
        trained = trained[model.lookup[trained] >= 0]
        scale = base.embed[base.lookup[trained]].std().item()
        for name in ("embed",) if tie else ("embed", "lm_head"):
            rows = getattr(model, name)
            rows.normal_(0.0, scale)
            rows[model.lookup[trained]] = getattr(base, name)[base.lookup[trained]]
        others = dict(base.named_parameters())
        for name, param in model.named_parameters():
            if name not in ("embed", "lm_head"):
                param.copy_(others[name])
    return model


def save(model: NanoGptOss, out: Path, step: int, loss: float | None, seconds: float) -> None:
    export.save(model, out)
    (out / "training.json").write_text(json.dumps(
        {"step": step, "loss": loss, "train_seconds": round(seconds),
         "fake_quant": model.layers[0].mlp.fake_quant}) + "\n")
    log(out, f"saved step {step}")


def log(out: Path, line: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {line}", flush=True)
    with open(out / "train.log", "a") as f:
        f.write(f"[{stamp}] {line}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=90,
                   help="time cap (with --steps 0: the schedule's length), on --clock")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="what --minutes counts: wall time, or this process's CPU time (pauses "
                        "and a shared core then cost no steps; meant for --threads 1)")
    p.add_argument("--steps", type=int, default=10_000,
                   help="schedule over N steps (reproducible); 0: over --minutes (see --clock)")
    p.add_argument("--init", help="continue training from this exported checkpoint folder")
    p.add_argument("--warmup", type=float, default=0.03, help="warmup share of the time")
    p.add_argument("--threads", type=int, default=2,
                   help="use 1 on a machine shared with other work (OpenMP threads contend)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast (a GPU; a CPU with AMX), float32 weights and loss")
    p.add_argument("--workers", type=int, default=0,
                   help="processes sampling batches ahead (0: the training process does)")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--pool", type=int, default=2,
                   help="sample batch*pool transcripts, train on a window of similar lengths")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--balance", type=float, default=0.01, help="router load-balance weight")
    p.add_argument("--quant-from", type=float, default=0.5)
    p.add_argument("--save-every", type=float, default=5)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--vocab-examples", type=int, default=20_000)
    p.add_argument("--realistic", type=float, default=0.0,
                   help="share of tasks from realistic.py (the rest from tasks.py)")
    p.add_argument("--sessions", type=float, default=0.0,
                   help="share of transcripts that are the last turn of a multi-turn session")
    p.add_argument("--efforts", type=lambda s: [float(w) for w in s.split(",")],
                   help="low,medium,high weights of the batches' effort (default: equal)")
    p.add_argument("--min-count", type=int, default=MIN_COUNT,
                   help="occurrences in --vocab-examples transcripts that earn a token a row")
    p.add_argument("--untied", dest="tie", action="store_false",
                   help="train embedding and unembedding apart (default: one tensor, exported "
                        "twice, which makes copying from the context easy to learn)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--intermediate", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    train(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
