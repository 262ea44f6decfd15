"""The generation interface the agent loop talks to.

A backend turns a prompt (Harmony tokens) into a stream of generated tokens. The in-process
runtime (local.py), a remote engine (remote.py) and the test replayer (scripted.py) all speak
it, so the loop never knows which one it drives.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Protocol, Sequence, runtime_checkable


class Generated(NamedTuple):
    """One sampled token and, when asked for, its log-probability."""
    token: int
    logprob: float | None = None


USAGE_KEYS = ("prompt_tokens", "reused_tokens", "computed_tokens", "generated_tokens")


def empty_usage() -> dict[str, int]:
    return {key: 0 for key in USAGE_KEYS}


@runtime_checkable
class Backend(Protocol):
    """`complete` yields tokens until a stop token (included) or `max_tokens`;
    `last_usage` then describes that call: prompt, reused-from-cache, computed, generated.
    A backend that takes a grammar says so with a true `takes_constraint` attribute and
    takes `constraint=` (agent.harmony.grammar's GrammarConstraint): the local runtime masks
    every token with it; the remote backend sends it where the engine follows grammars and
    checks the returned tokens against it. Callers pass it only to those."""

    last_usage: dict

    def complete(self, prompt: list[int], *, max_tokens: int, stop: Sequence[int],
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 logprobs: bool = False) -> Iterator[Generated]:
        ...


def is_backend(obj: object) -> bool:
    return callable(getattr(obj, "complete", None))


def sampling_for(backend, temperature: float | None, top_p: float | None) -> tuple[float, float]:
    """temperature and top_p: the caller's, else the checkpoint's recommendation (the embedded
    model decodes greedily; its generation_config.json), else gpt-oss's (1.0, 1.0)."""
    defaults = getattr(backend, "sampling_defaults", None) or {}
    return (defaults.get("temperature", 1.0) if temperature is None else temperature,
            defaults.get("top_p", 1.0) if top_p is None else top_p)
