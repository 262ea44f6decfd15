"""The o200k_harmony tokenizer: ids, special tokens and errors, against openai-harmony."""
from __future__ import annotations

import gzip

import pytest

from agent.harmony import tokenizer as tk

SAMPLES = ["Hello, world!", "  leading and trailing  ", "naïve café 🦜 中文 Ελληνικά",
           "def f(x):\n\treturn x ** 2\r\n", "<|start|>not special", "1234567890 3.14159",
           "don't won't I'LL", "\n\n\n", "a" * 500]


def test_named_special_token_ids():
    enc = tk.get_encoding()
    assert enc.name == "o200k_harmony" and enc.n_vocab == tk.VOCAB_SIZE == 201088
    expected = {"<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|return|>": 200002,
                "<|constrain|>": 200003, "<|channel|>": 200005, "<|start|>": 200006,
                "<|end|>": 200007, "<|message|>": 200008, "<|call|>": 200012}
    for text, token_id in expected.items():
        assert enc.encode(text, allowed_special="all") == [token_id]
        assert enc.decode([token_id]) == text


def test_reserved_tokens_fill_every_other_id():
    specials = tk.special_tokens()
    assert sorted(specials.values()) == list(range(199998, 201088))
    assert specials["<|reserved_200013|>"] == 200013
    assert specials["<|reserved_201087|>"] == 201087
    assert tk.decode([200000, 200004]) == "<|reserved_200000|><|reserved_200004|>"


def test_text_encoding_matches_openai_harmony(harmony_encoding):
    for text in SAMPLES:
        assert tk.encode_text(text) == harmony_encoding.encode(text, disallowed_special=())
        assert tk.decode(tk.encode_text(text)) == text
    # Special-token look-alikes in text stay plain text.
    assert tk.START not in tk.encode_text("<|start|>")


def test_missing_vocabulary_file_is_a_clear_error(tmp_path):
    with pytest.raises(tk.VocabularyError, match="vocabulary file not found"):
        tk.read_vocabulary_bytes(tmp_path / "o200k_base.tiktoken.gz")


def test_corrupt_vocabulary_file_is_a_clear_error(tmp_path):
    good = tk.read_vocabulary_bytes()
    bad = tmp_path / "o200k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(good[:-100], compresslevel=1))
    with pytest.raises(tk.VocabularyError, match="is corrupt: sha256"):
        tk.read_vocabulary_bytes(bad)
    bad.write_bytes(gzip.compress(good, compresslevel=1)[:1000])
    with pytest.raises(tk.VocabularyError, match="unreadable"):
        tk.read_vocabulary_bytes(bad)


def test_environment_override_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_OSS_AGENT_O200K_FILE", str(tmp_path / "nope.gz"))
    with pytest.raises(tk.VocabularyError, match="nope.gz"):
        tk.read_vocabulary_bytes()
