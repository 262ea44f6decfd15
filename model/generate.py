"""Sampling and the generation loops (one prompt with prefix reuse; a batch of prompts).

Sampling: temperature <= 0 is greedy; otherwise logits / temperature, then top_k (0 = off),
then top_p (nucleus, 1 = off), then a draw from a torch.Generator seeded with `seed`, so a seed
reproduces a run exactly (and row i of a batch matches a single run with the same seed).
Logprobs are the model's own log-probabilities (log_softmax of the raw logits), independent of
the sampling settings.

A `constraint` (an object with `mask()` -> a bool tensor [vocab] of the tokens allowed next,
or None for no restriction, `advance(token)` and `relax(reason)`, e.g.
agent.harmony.grammar.GrammarConstraint) restricts each pick to the tokens it allows: the
other logits become -inf before greedy or sampling. When the model can produce none of the
allowed tokens (a compact vocabulary), the allowed ones are ranked by id; a constraint that
allows nothing is told to relax. Without one,
nothing changes (same tokens, same random stream).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .cache import KVCache, common_prefix
from .lookup import PromptLookup


@dataclass(frozen=True)
class Generated:
    token: int
    logprob: float | None = None


class Sampler:
    def __init__(self, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 seed: int | None = None):
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __call__(self, logits: torch.Tensor, constraint=None) -> int:
        """logits [vocab] float32 -> token id (one the constraint allows, if there is one)."""
        logits = restrict(logits.float().cpu(), constraint)
        if self.temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits / self.temperature
        if 0 < self.top_k < logits.numel():
            kth = torch.topk(logits, self.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            before = torch.cumsum(sorted_probs, dim=0) - sorted_probs  # mass of better tokens
            sorted_probs = sorted_probs.masked_fill(before >= self.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def restrict(logits: torch.Tensor, constraint) -> torch.Tensor:
    """The logits with every token the constraint refuses at -inf (unchanged without one).
    When the model can produce none of the allowed tokens (a compact vocabulary lacks them),
    the allowed ones are ranked by id, so the shortest, most common pieces come first (ids
    are BPE ranks) and the constraint still holds; only an empty mask relaxes it."""
    mask = constraint.mask() if constraint is not None else None
    if mask is None:
        return logits
    mask = mask[:logits.numel()]
    allowed = logits.masked_fill(~mask, float("-inf"))
    if bool(torch.isfinite(allowed).any()):
        return allowed
    if bool(mask.any()):
        ranks = -torch.arange(1, logits.numel() + 1, dtype=logits.dtype).log()
        return ranks.masked_fill(~mask, float("-inf"))
    constraint.relax("the grammar allows no token here")
    return logits


def _is_constraint(constraint) -> bool:
    return all(callable(getattr(constraint, name, None)) for name in ("mask", "advance", "relax"))


def _logprob(logits: torch.Tensor, token: int) -> float:
    return float(torch.log_softmax(logits.float(), dim=-1)[token])


def spelled_prompt(model, tokens: Sequence[int]) -> list[int]:
    """The prompt as the model reads it (a compact vocabulary spells the ids it lacks); every
    path that fills the session cache goes through it, so cached prefixes compare alike."""
    spell = getattr(model, "spell", None)
    return spell(tokens) if spell is not None else [int(t) for t in tokens]


def _check(prompt: Sequence[int], max_tokens: int, vocab: int) -> None:
    if len(prompt) == 0:
        raise ValueError("prompt_tokens is empty")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    bad = [t for t in prompt if not 0 <= int(t) < vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} outside the vocabulary (0..{vocab - 1})")


def generate(model, prompt_tokens: Sequence[int], max_tokens: int = 256,
             stop_tokens: Sequence[int] = (), temperature: float = 1.0, top_p: float = 1.0,
             top_k: int = 0, seed: int | None = None, logprobs: bool = False,
             constraint=None, lookahead: int | None = None, *, drafter=None
             ) -> Iterator[Generated]:
    """Stream tokens for one prompt on the model's session cache.

    The cache keeps the longest prefix it shares with the prompt (at least the last prompt
    token is recomputed, for its logits) and prefills only the rest; model.last_usage counts
    prompt, reused, computed and generated tokens. A stop token is yielded, then generation
    ends; it is not fed back into the cache. `constraint` restricts the tokens (module doc);
    it is told each generated token. `lookahead` (default: the model's): when decoding
    greedily, check up to that many tokens drafted from the context in one forward pass
    (model/lookup.py; the tokens are those it would write one by one, up to the float
    rounding of a pass over several tokens; model.last_drafts counts the drafts). `drafter`:
    where drafts come from instead (`extend(tokens)` with each token written, `draft(limit)`).
    """
    prompt = [int(t) for t in prompt_tokens]
    _check(prompt, max_tokens, model.config.vocab_size)
    prompt = spelled_prompt(model, prompt)
    sampler = Sampler(temperature, top_p, top_k, seed)
    stops = {int(t) for t in stop_tokens}
    context = model.config.max_position_embeddings
    if len(prompt) > context:
        raise ValueError(f"prompt of {len(prompt)} tokens exceeds the context of {context}")
    if constraint is not None and not _is_constraint(constraint):
        raise TypeError(f"constraint must have mask(), advance(token) and relax(reason), "
                        f"got {constraint!r}")
    if lookahead is None:
        lookahead = getattr(model, "lookahead", 0)
    return _stream(model, prompt, max_tokens, stops, sampler, logprobs, context, constraint,
                   lookahead, drafter)


@torch.inference_mode()
def _stream(model, prompt, max_tokens, stops, sampler, logprobs, context, constraint=None,
            lookahead=0, drafter=None):
    cache: KVCache = model.cache
    model.stream_owner = owner = object()  # a newer generate() call takes the cache over
    reused = min(common_prefix(cache.tokens[0], prompt), len(prompt) - 1)
    usage = {"prompt_tokens": len(prompt), "reused_tokens": reused,
             "computed_tokens": len(prompt) - reused, "generated_tokens": 0}
    model.last_usage = usage
    drafts = model.last_drafts = {"drafted": 0, "accepted": 0, "passes": 0}
    if max_tokens == 0:
        usage.update(reused_tokens=0, computed_tokens=0)
        return
    cache.truncate(0, reused)
    hidden = model.forward([prompt[reused:]], cache)[0, -1:]
    # greedy decoding keeps exactly the drafted tokens it would have written (model/lookup.py)
    lookup = None
    if lookahead > 0 and sampler.temperature <= 0:
        lookup = drafter if drafter is not None else PromptLookup(prompt)
    draft: list[int] = []
    limit = lookahead  # halved after a pass that keeps no draft, doubled after one keeping all
    while True:
        kept = cache.length() - len(draft)  # the cache through the last token written
        written = []
        for i, logits in enumerate(model.project(hidden)):  # the last token's, then each draft's
            token = sampler(logits, constraint)
            if constraint is not None:
                constraint.advance(token)
            usage["generated_tokens"] += 1
            written.append(token)
            yield Generated(token, _logprob(logits, token) if logprobs else None)
            finished = (token in stops or usage["generated_tokens"] >= max_tokens
                        or kept + i >= context)
            if finished or i == len(draft) or token != draft[i]:
                cache.truncate(0, kept + i)  # drop the drafts after the first one not written
                break
        drafts["accepted"] += len(written) - 1
        if draft:
            limit = (min(lookahead, 2 * limit) if len(written) > len(draft)
                     else max(1, limit // 2) if len(written) == 1 else limit)
        if finished:
            return
        if model.stream_owner is not owner or model.cache is not cache:
            raise RuntimeError("generate: a newer generate() call (or reset) took over the "
                               "session cache; consume one stream at a time")
        draft = []
        if lookup is not None:
            lookup.extend(written)
            draft = lookup.draft(min(limit, max_tokens - usage["generated_tokens"] - 1,
                                     context - cache.length() - 1))
            drafts["drafted"] += len(draft)
            drafts["passes"] += bool(draft)
        hidden = model.forward([[token] + draft], cache)[0]


def stream_batch(model, prompts: Sequence[Sequence[int]], max_tokens: int | Sequence[int] = 256,
                 stop_tokens: Sequence[int] = (), temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int | None = None, logprobs: bool = False,
                 constraints: Sequence | None = None) -> Iterator[tuple[int, Generated]]:
    """Generate for several prompts at once, one forward pass per step for all rows, streaming
    (row index, Generated) as tokens are sampled. max_tokens may differ per row, and so may
    the constraint (`constraints`: one per row, None for a free row).

    Uses a fresh cache of its own (the session cache is untouched); rows stop independently
    (a finished row keeps rewriting its last slot until all are done). model.last_usage sums
    over the rows.
    """
    prompts = [[int(t) for t in p] for p in prompts]
    limits = [max_tokens] * len(prompts) if isinstance(max_tokens, int) else list(max_tokens)
    if len(limits) != len(prompts):
        raise ValueError(f"{len(limits)} max_tokens for {len(prompts)} prompts")
    context = model.config.max_position_embeddings
    for prompt, limit in zip(prompts, limits):
        _check(prompt, limit, model.config.vocab_size)
    prompts = [spelled_prompt(model, p) for p in prompts]
    for prompt in prompts:
        if len(prompt) > context:
            raise ValueError(f"prompt of {len(prompt)} tokens exceeds the context of {context}")
    constraints = list(constraints) if constraints is not None else [None] * len(prompts)
    if len(constraints) != len(prompts) or not all(c is None or _is_constraint(c) for c in constraints):
        raise TypeError("constraints must give one constraint (or None) per prompt")
    samplers = [Sampler(temperature, top_p, top_k, seed) for _ in prompts]
    total = sum(len(p) for p in prompts)
    model.last_usage = {"prompt_tokens": total, "reused_tokens": 0, "computed_tokens": total,
                        "generated_tokens": 0}
    return _batch_stream(model, prompts, limits, {int(t) for t in stop_tokens}, samplers,
                         logprobs, context, constraints)


@torch.inference_mode()
def _batch_stream(model, prompts, limits, stops, samplers, logprobs, context, constraints):
    active = [limit > 0 for limit in limits]
    if not any(active):
        return
    cache = KVCache(model.config, len(prompts), model.dtype, model.device)
    hidden = model.forward(prompts, cache)
    last = torch.tensor([len(p) - 1 for p in prompts], device=hidden.device)
    hidden = hidden[torch.arange(len(prompts), device=hidden.device), last]
    last_token = [p[-1] for p in prompts]
    counts = [0] * len(prompts)
    while True:
        logits = model.project(hidden)
        feed = []
        for row, sampler in enumerate(samplers):
            if not active[row]:
                cache.truncate(row, cache.length(row) - 1)  # rewrite the same slot; ignored
                feed.append([last_token[row]])
                continue
            token = sampler(logits[row], constraints[row])
            if constraints[row] is not None:
                constraints[row].advance(token)
            counts[row] += 1
            model.last_usage["generated_tokens"] += 1
            yield row, Generated(token, _logprob(logits[row], token) if logprobs else None)
            if token in stops or counts[row] >= limits[row] or cache.length(row) >= context:
                active[row] = False
            last_token[row] = token
            feed.append([token])
        if not any(active):
            return
        hidden = model.forward(feed, cache)[:, -1]


def generate_batch(model, prompts: Sequence[Sequence[int]], max_tokens: int | Sequence[int] = 256,
                   stop_tokens: Sequence[int] = (), temperature: float = 1.0, top_p: float = 1.0,
                   top_k: int = 0, seed: int | None = None, logprobs: bool = False
                   ) -> list[list[Generated]]:
    """stream_batch, collected: one list of Generated per prompt."""
    results: list[list[Generated]] = [[] for _ in prompts]
    for row, generated in stream_batch(model, prompts, max_tokens, stop_tokens, temperature,
                                       top_p, top_k, seed, logprobs):
        results[row].append(generated)
    return results
