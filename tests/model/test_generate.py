"""Generation: stop tokens, max_tokens, sampling settings, seeds, logprobs, batches."""
from __future__ import annotations

import pytest
import torch

from agent import model as runtime
from agent.model.generate import Sampler


@pytest.fixture(scope="module")
def model(checkpoint):
    return runtime.load(checkpoint("base"), dtype=torch.float32)


PROMPT = list(range(3, 23))


def run(model, prompt=PROMPT, **kw):
    return [g.token for g in model.generate(prompt, **kw)]


def test_greedy_is_argmax_of_logits(model):
    out = run(model, max_tokens=5, temperature=0)
    seq = PROMPT + out
    logits = model.logits(seq)
    assert out == [int(logits[len(PROMPT) - 1 + i].argmax()) for i in range(5)]


def test_max_tokens_and_stop_tokens(model):
    assert len(run(model, max_tokens=7, temperature=0)) == 7
    assert run(model, max_tokens=0) == []
    greedy = run(model, max_tokens=8, temperature=0)
    stop = greedy[3]
    first = greedy.index(stop)
    out = run(model, max_tokens=8, temperature=0, stop_tokens=[stop, 999999])
    assert out == greedy[: first + 1]  # the stop token is yielded, then generation ends
    assert model.last_usage["generated_tokens"] == first + 1


def test_seed_reproduces_and_differs(model):
    a = run(model, max_tokens=12, temperature=1.0, seed=7)
    b = run(model, max_tokens=12, temperature=1.0, seed=7)
    c = run(model, max_tokens=12, temperature=1.0, seed=8)
    assert a == b and a != c


def test_top_k_one_and_tiny_top_p_are_greedy(model):
    greedy = run(model, max_tokens=6, temperature=0)
    assert run(model, max_tokens=6, temperature=1.5, top_k=1, seed=1) == greedy
    assert run(model, max_tokens=6, temperature=1.5, top_p=1e-6, seed=1) == greedy


def test_sampler_respects_top_k_and_top_p():
    logits = torch.tensor([5.0, 4.0, 3.0, 0.0, -1.0])
    sampler = Sampler(temperature=1.0, top_k=2, seed=0)
    assert {sampler(logits) for _ in range(200)} == {0, 1}
    probs = torch.softmax(logits, 0)  # 0.66, 0.24, 0.09, ...: top_p 0.8 keeps the first two
    sampler = Sampler(temperature=1.0, top_p=0.8, seed=0)
    assert {sampler(logits) for _ in range(200)} == {0, 1}
    assert float(probs[0]) < 0.8 < float(probs[:2].sum())
    sampler = Sampler(temperature=1.0, seed=0)  # unrestricted: the tail shows up
    assert len({sampler(logits) for _ in range(500)}) >= 4
    with pytest.raises(ValueError):
        Sampler(top_p=0.0)


def test_logprobs_are_the_models(model):
    out = list(model.generate(PROMPT, max_tokens=4, temperature=0.8, seed=3, logprobs=True))
    logits = model.logits(PROMPT + [g.token for g in out])
    for i, g in enumerate(out):
        want = torch.log_softmax(logits[len(PROMPT) - 1 + i], -1)[g.token]
        assert abs(g.logprob - float(want)) < 1e-4
    assert all(g.logprob is None for g in model.generate(PROMPT, max_tokens=2))


def test_batch_matches_single_runs(model):
    prompts = [PROMPT, PROMPT[:7], list(range(50, 80))]
    batch = model.generate_batch(prompts, max_tokens=6, temperature=0, logprobs=True)
    assert model.last_usage == {"prompt_tokens": 57, "reused_tokens": 0, "computed_tokens": 57,
                                "generated_tokens": 18}
    for prompt, row in zip(prompts, batch):
        single = list(model.generate(prompt, max_tokens=6, temperature=0, logprobs=True))
        assert [g.token for g in row] == [g.token for g in single]
        assert max(abs(a.logprob - b.logprob) for a, b in zip(row, single)) < 1e-4
    sampled = model.generate_batch(prompts, max_tokens=5, temperature=1.0, seed=11)
    assert [g.token for g in sampled[1]] == run(model, PROMPT[:7], max_tokens=5, temperature=1.0,
                                                seed=11)


def test_batch_rows_stop_independently(model):
    prompts = [PROMPT, PROMPT[:9]]
    free = model.generate_batch(prompts, max_tokens=6, temperature=0)
    stop = free[0][1].token
    out = model.generate_batch(prompts, max_tokens=6, temperature=0, stop_tokens=[stop])
    row0 = [g.token for g in free[0]]
    assert [g.token for g in out[0]] == row0[: row0.index(stop) + 1]
    if stop not in [g.token for g in free[1]]:
        assert len(out[1]) == 6


def test_bad_requests_fail_clearly(model):
    with pytest.raises(ValueError, match="empty"):
        model.generate([], max_tokens=3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate([model.config.vocab_size], max_tokens=3)
    with pytest.raises(ValueError, match="empty"):
        model.logits([])


def test_stream_batch_interleaves_rows_and_honours_per_row_limits(model):
    prompts = [PROMPT, PROMPT[:9], PROMPT[:4]]
    events = list(model.stream_batch(prompts, max_tokens=[3, 0, 5], temperature=0))
    rows = [row for row, _ in events]
    assert rows == [0, 2, 0, 2, 0, 2, 2, 2]  # step by step; row 1 asked for nothing
    for index, limit in ((0, 3), (2, 5)):
        tokens = [g.token for row, g in events if row == index]
        assert tokens == run(model, prompts[index], max_tokens=limit, temperature=0)
    with pytest.raises(ValueError, match="max_tokens for"):
        model.stream_batch(prompts, max_tokens=[1, 2])


class Oracle:
    """Drafts the tokens a run without drafts wrote (`truth`), with `wrong` ones swapped in:
    how many get kept then depends only on the model, not on the context."""

    def __init__(self, truth: list[int], wrong: set[int] = frozenset()):
        self.truth, self.wrong, self.written = truth, wrong, 0

    def extend(self, tokens):
        self.written += len(tokens)

    def draft(self, limit):
        ids = list(range(self.written, min(self.written + limit, len(self.truth))))
        return [self.truth[i] if i not in self.wrong else (self.truth[i] + 1) % 1000 for i in ids]


@pytest.mark.parametrize("wrong", [set(), {3, 4, 11}, set(range(40))])
def test_drafts_keep_exactly_the_greedy_tokens(model, wrong):
    """However good the drafts, greedy decoding with them writes the tokens it writes alone,
    with the same logprobs; the session cache ends as it would, and the next call reuses it."""
    want = [(g.token, g.logprob) for g in model.generate(PROMPT, max_tokens=30, temperature=0,
                                                        logprobs=True, lookahead=0)]
    truth = [t for t, _ in want]
    cached = list(model.cache.tokens[0])
    drafter = Oracle(truth, wrong)
    got = [(g.token, g.logprob) for g in model.generate(PROMPT, max_tokens=30, temperature=0,
                                                       logprobs=True, lookahead=5,
                                                       drafter=drafter)]
    assert [t for t, _ in got] == truth
    assert [p for _, p in got] == pytest.approx([p for _, p in want], abs=1e-4)
    drafts = model.last_drafts
    if not wrong:  # each pass keeps its 5 drafts and writes one more: 30 tokens in 5 passes
        assert drafts["accepted"] == drafts["drafted"] == 24 and drafts["passes"] == 5
    elif len(wrong) == 40:
        assert drafts["accepted"] == 0 and drafts["passes"] == 28  # the last may draft none
    else:
        assert 0 < drafts["accepted"] < drafts["drafted"]
    assert model.cache.tokens[0] == cached
    list(model.generate(PROMPT + truth[:10], max_tokens=1, temperature=0))
    assert model.last_usage["reused_tokens"] == len(PROMPT) + 9


def test_drafts_stop_at_stop_tokens_and_max_tokens(model):
    truth = run(model, max_tokens=20, temperature=0, lookahead=0)
    stop = truth[6]
    want = truth[:truth.index(stop) + 1]
    got = [g.token for g in model.generate(PROMPT, max_tokens=20, temperature=0, lookahead=8,
                                           stop_tokens=[stop], drafter=Oracle(truth))]
    assert got == want
    got = [g.token for g in model.generate(PROMPT, max_tokens=4, temperature=0, lookahead=8,
                                           drafter=Oracle(truth))]
    assert got == truth[:4]


def test_prompt_lookup_drafts_what_followed_the_last_ngram():
    from agent.model.lookup import PromptLookup
    lookup = PromptLookup([1, 2, 3, 4, 5, 6, 1, 2, 3, 9, 9, 1, 2])
    assert lookup.draft(4) == []           # (9, 1, 2) never occurred before
    lookup.extend([3])
    assert lookup.draft(4) == [9, 9, 1, 2]  # the latest earlier (1, 2, 3) was followed by 9 9
    assert lookup.draft(0) == [] and PromptLookup([1, 2]).draft(3) == []
