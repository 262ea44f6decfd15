"""A backend that replays written completions: the loop's tests run real Harmony token
streams through the real parser and tools without a model.

Each `complete` call consumes the next completion (Harmony text with special tokens, a token
list, or a function of the prompt). Like a real engine it stops after the first stop token or
at `max_tokens`, and it reports usage as if it kept a prefix cache, so prompts it saw can be
inspected in `prompts`.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence, Union

from agent.backends.base import Generated, empty_usage

Completion = Union[str, Sequence[int], Callable[[list[int]], Union[str, Sequence[int]]]]


class ScriptExhausted(RuntimeError):
    pass


def encode_harmony(text: str) -> list[int]:
    from agent.harmony.tokenizer import get_encoding
    return list(get_encoding().encode(text, allowed_special="all"))


class ScriptedBackend:
    """`ScriptedBackend(["<|channel|>final<|message|>Hi<|return|>"], logprob=-0.1)`."""

    def __init__(self, completions: Sequence[Completion], *, logprob: float | None = None):
        self.completions = list(completions)
        self.logprob = logprob          # reported for every token when logprobs are asked for
        self.prompts: list[list[int]] = []
        self.last_usage = empty_usage()
        self._cached: list[int] = []    # what a real engine would hold in its KV cache

    @classmethod
    def from_file(cls, path) -> "ScriptedBackend":
        """A recorded-completions file: {"completions": [...], "logprob": null} or a bare list."""
        import json
        from pathlib import Path
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read recorded completions ({exc})") from None
        completions = data.get("completions") if isinstance(data, dict) else data
        if not isinstance(completions, list) or not all(isinstance(c, (str, list)) for c in completions):
            raise ValueError(f"{path}: expected a list of completions (Harmony text or token lists)")
        return cls(completions, logprob=data.get("logprob") if isinstance(data, dict) else None)

    def forget_prefix(self) -> None:
        """As the runtime's: the next prompt reuses nothing (the server's cache scopes)."""
        self._cached = []

    @property
    def remaining(self) -> int:
        return len(self.completions)

    def complete(self, prompt: list[int], *, max_tokens: int, stop: Sequence[int] = (),
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 logprobs: bool = False) -> Iterator[Generated]:
        prompt = list(prompt)
        self.prompts.append(prompt)
        if not self.completions:
            raise ScriptExhausted(f"scripted backend has no completion left for call {len(self.prompts)}")
        item = self.completions.pop(0)
        if callable(item):
            item = item(prompt)
        tokens = encode_harmony(item) if isinstance(item, str) else list(item)
        reused = _common_prefix(prompt, self._cached)
        self.last_usage = {"prompt_tokens": len(prompt), "reused_tokens": reused,
                           "computed_tokens": len(prompt) - reused, "generated_tokens": 0}
        out: list[int] = []
        stops = set(stop)
        for token in tokens[:max_tokens]:
            out.append(token)
            self.last_usage["generated_tokens"] = len(out)
            self._cached = prompt + out
            yield Generated(token, self.logprob if logprobs else None)
            if token in stops:
                break


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
