"""Prompt-lookup drafts: the tokens the model will probably write next, found in its context.

An agent's answer often quotes what its context already holds (a tool's result, the user's
words, its own analysis). When the last `ngram` tokens also occur earlier in the context, the
tokens that followed them there are a draft; generate checks a whole draft in one forward pass
and, decoding greedily, keeps exactly the tokens it would have written one by one, so a quoted
passage costs one pass per accepted run instead of one per token. No match, no draft: text
that quotes nothing costs nothing extra.
"""
from __future__ import annotations

from typing import Sequence


class PromptLookup:
    def __init__(self, context: Sequence[int], ngram: int = 3):
        self.ngram = ngram
        self.tokens: list[int] = []
        self.follows: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest successor is
        self.extend(context)

    def extend(self, tokens: Sequence[int]) -> None:
        n = self.ngram
        for token in tokens:
            self.tokens.append(int(token))
            end = len(self.tokens) - 1  # the n-gram before the new token now has a successor
            if end >= n:
                self.follows[tuple(self.tokens[end - n:end])] = end

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the latest earlier occurrence of the last n-gram."""
        if limit <= 0 or len(self.tokens) < self.ngram:
            return []
        start = self.follows.get(tuple(self.tokens[-self.ngram:]))
        return [] if start is None else self.tokens[start:start + limit]
