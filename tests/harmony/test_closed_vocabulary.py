"""Closed vocabularies: text spelled in a subset of o200k ids, checked against tiktoken."""
from __future__ import annotations

import random

import pytest
import tiktoken

from agent.harmony import tokenizer as tk
from agent.harmony.closed_vocabulary import ClosedVocabulary, merge_parts

TEXTS = ["Hello, world!", "naïve café 🦜 中文 Ελληνικά", "def f(x):\n\treturn x ** 2\r\n",
         '{"city": "berlin", "ticker": "XQZ7-kP"}', "  spaces  ", "", "\x00\xff",
         "Grüße aus Köln, 東京 und Zürich!"]


def random_texts(count: int, seed: int) -> list[str]:
    """Runs of random o200k tokens' text: every kind of piece the vocabulary has."""
    rng, enc = random.Random(seed), tk.get_encoding()
    return ["".join(enc.decode([rng.randrange(256, tk.O200K_RANKS)]) for _ in range(8))
            for _ in range(count)]


@pytest.mark.parametrize("limit", [256, 1000, 30_000])
def test_spelling_is_tiktoken_bpe_with_the_kept_ranks(limit):
    """Keeping the ids below `limit` is a BPE vocabulary of its own: tiktoken with only those
    ranks must tokenize every text exactly as the closed vocabulary spells it."""
    ranks = tk.parse_ranks(tk.read_vocabulary_bytes())
    oracle = tiktoken.Encoding(name=f"o200k_below_{limit}", pat_str=tk.O200K_PATTERN,
                               mergeable_ranks={b: r for b, r in ranks.items() if r < limit},
                               special_tokens={})
    vocabulary = ClosedVocabulary(range(limit))
    for text in TEXTS + random_texts(300, seed=limit):
        assert vocabulary.encode(text) == oracle.encode_ordinary(text), text


def test_any_closed_set_keeps_the_bytes_and_only_its_ids():
    rng = random.Random(7)
    kept = set(range(256)) | set(rng.sample(range(256, tk.O200K_RANKS), 20_000)) | {tk.START}
    vocabulary = ClosedVocabulary(kept)
    assert vocabulary.has_bytes
    for text in TEXTS + random_texts(200, seed=3):
        full = tk.encode_text(text)
        spelled = vocabulary.spell(full + [tk.START])
        assert set(spelled) <= kept
        assert tk.decode(spelled) == text + "<|start|>"
        # each token is spelled alone: a prompt's prefix stays a prefix (prefix caching)
        assert vocabulary.spell(full[:3]) == spelled[:len(vocabulary.spell(full[:3]))]


def test_merge_parts_are_two_earlier_tokens():
    enc, rng = tk.get_encoding(), random.Random(0)
    for token in rng.sample(range(256, tk.O200K_RANKS), 2000):
        parts = merge_parts(token)
        assert len(parts) == 2 and max(parts) < token
        assert enc.decode_bytes(list(parts)) == enc.decode_single_token_bytes(token)
    assert merge_parts(65) == (65,)


def test_what_cannot_be_spelled_stays():
    """Without the byte tokens (or for a special token outside the set) the id is kept: the
    model reads its zero row, as a compact checkpoint always did."""
    vocabulary = ClosedVocabulary([tk.encode_text("a")[0]])
    assert not vocabulary.has_bytes
    token = tk.encode_text("hello")
    assert tk.decode(vocabulary.spell(token)) == "hello"
    assert vocabulary.spell([tk.CALL]) == [tk.CALL]
