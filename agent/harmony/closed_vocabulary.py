"""A closed vocabulary: a model with rows for only some o200k_harmony ids (the embedded nano
model) reads every text through those ids and writes only them.

A token outside the set is spelled with the tokens BPE joined to make it (its last merge),
recursively, down to the 256 single-byte tokens, which a closed vocabulary keeps. The bytes,
and so the decoded text, never change: a full-vocabulary model and this one write the same
strings, and a prompt's prefix stays a prefix once spelled (each token is spelled alone), so
prefix caching works as before. The real gpt-oss models have no closed vocabulary.
"""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

from . import tokenizer as tk

BYTE_TOKENS = range(256)  # o200k gives each single byte one of the ids 0..255


@functools.lru_cache(maxsize=None)
def merge_parts(token: int) -> tuple[int, ...]:
    """The tokens BPE had just before its merge that made `token`: its bytes merged with only
    the ranks below its own (ids are ranks), so usually two tokens; a single byte is itself."""
    encoding = tk.get_encoding()
    pieces = [bytes([b]) for b in encoding.decode_single_token_bytes(token)]

    def rank(pair: bytes) -> int | None:
        try:
            found = encoding.encode_single_token(pair)
        except KeyError:
            return None
        return found if found < token else None

    while len(pieces) > 1:
        pairs = [(r, i) for i, r in enumerate(rank(a + b) for a, b in zip(pieces, pieces[1:]))
                 if r is not None]
        if not pairs:
            break
        _, i = min(pairs)  # the lowest rank, leftmost on ties, as tiktoken merges
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    return tuple(encoding.encode_single_token(p) for p in pieces)


class ClosedVocabulary:
    """`spell(tokens)`: the same bytes in tokens of `ids` only. Special tokens and single
    bytes the set lacks stay as they are (a checkpoint without them reads a zero row)."""

    def __init__(self, ids: Iterable[int]):
        self.ids = frozenset(int(i) for i in ids)
        self._spelled: dict[int, tuple[int, ...]] = {}

    @property
    def has_bytes(self) -> bool:
        """Whether every text can be spelled (all 256 single-byte tokens are in the set)."""
        return all(b in self.ids for b in BYTE_TOKENS)

    def spell(self, tokens: Sequence[int]) -> list[int]:
        out: list[int] = []
        for token in tokens:
            token = int(token)
            if token in self.ids:
                out.append(token)
            else:
                out.extend(self._spelling(token))
        return out

    def _spelling(self, token: int) -> tuple[int, ...]:
        spelled = self._spelled.get(token)
        if spelled is None:
            if token in self.ids or token >= tk.O200K_RANKS or token in BYTE_TOKENS:
                spelled = (token,)
            else:
                spelled = tuple(t for part in merge_parts(token) for t in self._spelling(part))
            self._spelled[token] = spelled
        return spelled

    def encode(self, text: str) -> list[int]:
        """Plain text in this vocabulary's tokens."""
        return self.spell(tk.encode_text(text))
