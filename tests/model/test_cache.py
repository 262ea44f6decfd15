"""KV cache: incremental decode == full recomputation; prefix reuse and rollback == fresh run."""
from __future__ import annotations

import pytest
import torch

from agent import model as runtime
from agent.kernels import reference_kernels
from agent.model.cache import KVCache, common_prefix
from agent.model.config import preset


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


PACKED_CONFIG = preset("tiny", head_dim=64, sliding_window=8)  # the kernel's head dims


@pytest.fixture(scope="module")
def bf16_model(checkpoint):
    model = runtime.load(checkpoint(PACKED_CONFIG), dtype=torch.bfloat16)
    if not model.cache.packed:
        pytest.skip("no CPU kernels here: bf16 caches stay position-major")
    return model


@pytest.mark.default_kernels
def test_packed_cache_decodes_as_the_position_major_one(bf16_model):
    """bf16 caches hold the attention kernel's packed layouts (decode reads them without
    packing): 200 prompt tokens then 100 decoded ones, the cache growing past 256 slots on the
    way (its contents copied), give the logits of a position-major cache and of the reference
    kernels, and prefix reuse keeps working on it."""
    model, seq = bf16_model, tokens(300, seed=9)

    def run(cache):
        out = [model.project(model.forward([seq[:200]], cache)[0, -1])]
        out += [model.project(model.forward([[t]], cache)[0, -1]) for t in seq[200:]]
        return torch.stack(out).float()

    packed = KVCache(model.config, 1, torch.bfloat16)
    assert packed.packed
    got = run(packed)
    assert packed.capacity == 512 and packed.tokens[0] == seq
    rows = run(KVCache(model.config, 1, torch.bfloat16, packed=False))
    with reference_kernels():
        ref = run(KVCache(model.config, 1, torch.bfloat16, packed=False))
    def error(a):  # relative rms against the reference kernels
        return float((a - ref).norm() / ref.norm())
    # here: 0.036 both (bf16 kernels against the reference's float32 attention), 0.003 apart
    assert error(got) <= 1.1 * error(rows) + 1e-3 and error(got) < 0.05
    assert (got - rows).norm() / ref.norm() < 0.01
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9
    model.reset()
    first, _ = greedy(model, seq[:40])
    again, _ = greedy(model, seq[:40] + first + seq[40:45])
    assert model.last_usage["reused_tokens"] == 40 + 5
