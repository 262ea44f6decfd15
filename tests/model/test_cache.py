"""KV cache: incremental decode == full recomputation; prefix reuse and rollback == fresh run."""
from __future__ import annotations

import pytest
import torch

from agent import model as runtime
from agent.model.cache import KVCache, common_prefix


TOL = 1e-4


@pytest.fixture(scope="module")
def model(checkpoint):
    return runtime.load(checkpoint("mha_topk4"), dtype=torch.float32)


def tokens(n, seed=0, vocab=1024):
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def close(a, b):
    return (a - b).abs().max() <= TOL * max(1.0, float(b.abs().max()))


def test_incremental_decode_equals_full_recomputation(model):
    seq = tokens(30)  # window is 4: most steps slide
    full = model.logits(seq)
    cache = KVCache(model.config, 1, model.dtype)
    step_logits = [model.project(model.forward([seq[:5]], cache)[0, -1])]
    for t in seq[5:]:
        step_logits.append(model.project(model.forward([[t]], cache)[0, -1]))
    assert close(torch.stack(step_logits), full[4:])
    assert cache.tokens[0] == seq


def test_chunked_prefill_equals_one_pass(model):
    seq = tokens(40, seed=1)
    whole = model.logits(seq)
    model_chunk = model._chunk
    try:
        model._chunk = lambda batch, keys: 7  # force 6 chunks of 7 tokens
        chunked = model.logits(seq)
    finally:
        model._chunk = model_chunk
    assert close(chunked, whole)


def greedy(model, prompt, n=6):
    out = list(model.generate(prompt, max_tokens=n, temperature=0, logprobs=True))
    return [g.token for g in out], torch.tensor([g.logprob for g in out])


def test_prefix_reuse_equals_fresh_run(model):
    prompt = tokens(25, seed=2)
    model.reset()
    first, _ = greedy(model, prompt)
    assert model.last_usage == {"prompt_tokens": 25, "reused_tokens": 0, "computed_tokens": 25,
                                "generated_tokens": 6}
    # the agent loop's normal case: the next prompt extends the previous one and its output
    extended = prompt + first + tokens(5, seed=3)
    got, got_lp = greedy(model, extended)
    assert model.last_usage["reused_tokens"] == 25 + 5  # the last generated token was never fed
    assert model.last_usage["computed_tokens"] == len(extended) - 30
    model.reset()
    want, want_lp = greedy(model, extended)
    assert got == want and close(got_lp, want_lp)


def test_rollback_more_than_a_window_back(model):
    window = model.config.sliding_window
    base = tokens(40, seed=4)
    diverged = base[:12] + tokens(20, seed=5)  # divergence 28 tokens (7 windows) back
    model.reset()
    greedy(model, base)
    got, got_lp = greedy(model, diverged)
    assert model.last_usage["reused_tokens"] == 12
    assert model.last_usage["computed_tokens"] == len(diverged) - 12
    assert len(base) + 5 - 12 > window
    model.reset()
    want, want_lp = greedy(model, diverged)
    assert got == want and close(got_lp, want_lp)


def test_identical_prompt_recomputes_only_the_last_token(model):
    prompt = tokens(10, seed=6)
    model.reset()
    first, _ = greedy(model, prompt)
    again, _ = greedy(model, prompt)
    assert again == first
    assert model.last_usage["reused_tokens"] == 9 and model.last_usage["computed_tokens"] == 1


def test_cache_grows_and_keeps_its_contents(model):
    cache = KVCache(model.config, 1, torch.float32)
    cache.reserve(10)
    assert cache.capacity == 256
    cache.reserve(300)
    assert cache.capacity == 512
    with pytest.raises(ValueError, match="exceeds"):
        cache.reserve(model.config.max_position_embeddings + 1)


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_a_newer_stream_takes_the_cache_over(model):
    model.reset()
    old = model.generate(tokens(8, seed=7), max_tokens=5, temperature=0)
    next(old)
    new = list(model.generate(tokens(8, seed=8), max_tokens=3, temperature=0))
    assert len(new) == 3
    with pytest.raises(RuntimeError, match="newer generate"):
        next(old)
