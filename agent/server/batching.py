"""Serving several waiting requests in one batch on the in-process runtime.

`GptOss.generate_batch` runs all rows through one forward pass per step (on its own cache,
leaving the session cache for prefix reuse untouched). It returns when every row is done, so
a batched request's tokens arrive together at the end: batching trades time-to-first-token
for throughput, which is why the engine only batches requests that are already waiting.
"""
from __future__ import annotations

from typing import Iterator, Sequence

from agent.backends.base import Generated


class BatchingBackend:
    """A local backend plus `complete_batch` (what `Engine` looks for)."""

    def __init__(self, backend):
        self.backend = backend
        self.model = backend.model
        self.last_batch_usage: list[dict] = []

    @property
    def last_usage(self) -> dict:
        return self.backend.last_usage

    def complete(self, prompt, **kw) -> Iterator[Generated]:
        return self.backend.complete(prompt, **kw)

    def complete_batch(self, prompts: Sequence[list[int]], *, max_tokens: Sequence[int],
                       stop: Sequence[int], temperature: float, top_p: float,
                       seed: int | None, logprobs: bool, cancelled=()) -> Iterator[tuple[int, Generated]]:
        rows = self.model.generate_batch([list(p) for p in prompts], max_tokens=max(max_tokens),
                                         stop_tokens=list(stop), temperature=temperature,
                                         top_p=top_p, seed=seed, logprobs=logprobs)
        self.last_batch_usage = []
        for index, (prompt, row, limit) in enumerate(zip(prompts, rows, max_tokens)):
            row = row[:limit]
            self.last_batch_usage.append({"prompt_tokens": len(prompt), "reused_tokens": 0,
                                          "computed_tokens": len(prompt),
                                          "generated_tokens": len(row)})
            for item in row:
                yield index, Generated(int(item.token), getattr(item, "logprob", None))


def with_batching(backend):
    """The backend, able to batch when its model can."""
    model = getattr(backend, "model", None)
    return BatchingBackend(backend) if callable(getattr(model, "generate_batch", None)) else backend
