"""The `o200k_harmony` tokenizer: o200k_base ranks plus the gpt-oss special tokens.

The ranks come from `o200k_base.tiktoken.gz`, shipped next to this module as package data
(OpenAI's published o200k_base vocabulary), so no network access is ever needed. The file is
checked against its published sha256 because a silently different vocabulary would make every
prompt wrong without any visible error.
"""
from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
import os
from pathlib import Path

import tiktoken

# Special token ids used by the Harmony format (gpt-oss).
STARTOFTEXT = 199998
ENDOFTEXT = 199999
RETURN = 200002
CONSTRAIN = 200003
CHANNEL = 200005
START = 200006
END = 200007
MESSAGE = 200008
CALL = 200012
VOCAB_SIZE = 201088

NAMED_SPECIAL_TOKENS = {
    "<|startoftext|>": STARTOFTEXT,
    "<|endoftext|>": ENDOFTEXT,
    "<|return|>": RETURN,
    "<|constrain|>": CONSTRAIN,
    "<|channel|>": CHANNEL,
    "<|start|>": START,
    "<|end|>": END,
    "<|message|>": MESSAGE,
    "<|call|>": CALL,
}

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_RANKS = 199998  # ids 0..199997 are byte-pair merges; the rest are special tokens

# The o200k pre-tokenization regex (contractions, letter runs, 1-3 digits, punctuation, spaces).
O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])


class VocabularyError(RuntimeError):
    """The o200k_base vocabulary file is missing or not the expected file."""


def special_tokens() -> dict[str, int]:
    """Every special token: the named ones plus `<|reserved_N|>` for each other id."""
    named_ids = set(NAMED_SPECIAL_TOKENS.values())
    tokens = dict(NAMED_SPECIAL_TOKENS)
    for token_id in range(STARTOFTEXT, VOCAB_SIZE):
        if token_id not in named_ids:
            tokens[f"<|reserved_{token_id}|>"] = token_id
    return tokens


def vocabulary_path() -> Path:
    """Where the o200k_base ranks live: $GPT_OSS_AGENT_O200K_FILE if set, else the packaged copy."""
    override = os.environ.get("GPT_OSS_AGENT_O200K_FILE")
    return Path(override) if override else Path(__file__).with_name("o200k_base.tiktoken.gz")


def read_vocabulary_bytes(path: Path | None = None) -> bytes:
    """The unzipped o200k_base.tiktoken file, sha256-checked."""
    path = vocabulary_path() if path is None else Path(path)
    if not path.is_file():
        raise VocabularyError(f"o200k_base vocabulary file not found: {path}")
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise VocabularyError(f"o200k_base vocabulary file {path} is unreadable: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != O200K_SHA256:
        raise VocabularyError(f"o200k_base vocabulary file {path} is corrupt: sha256 {digest}, "
                              f"expected {O200K_SHA256}")
    return data


def parse_ranks(data: bytes) -> dict[bytes, int]:
    """`base64-token rank` lines -> {token bytes: rank}."""
    fields = data.split()  # token, rank, token, rank, ...
    return {binascii.a2b_base64(token): int(rank) for token, rank in zip(fields[::2], fields[1::2])}


@functools.lru_cache(maxsize=1)
def get_encoding() -> tiktoken.Encoding:
    """The `o200k_harmony` tiktoken Encoding (built once, then cached)."""
    ranks = parse_ranks(read_vocabulary_bytes())
    if len(ranks) != O200K_RANKS:
        raise VocabularyError(f"o200k_base vocabulary has {len(ranks)} ranks, expected {O200K_RANKS}")
    return tiktoken.Encoding(name="o200k_harmony", pat_str=O200K_PATTERN, mergeable_ranks=ranks,
                             special_tokens=special_tokens(), explicit_n_vocab=VOCAB_SIZE)


def encode_text(text: str) -> list[int]:
    """Encode text as plain text: special-token look-alikes stay ordinary tokens."""
    return get_encoding().encode_ordinary(text)


def decode(tokens: list[int]) -> str:
    """Decode ids to text (invalid UTF-8 becomes U+FFFD)."""
    return get_encoding().decode(tokens)


@functools.lru_cache(maxsize=None)
def token_bytes(token: int) -> bytes:
    """One token's bytes (a special token gives its `<|name|>` text); cached, as constrained
    decoding asks for the same few thousand tokens again and again."""
    return get_encoding().decode_single_token_bytes(token)
