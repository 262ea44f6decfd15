"""Serving several waiting requests in one batch on the in-process runtime.

`GptOss.stream_batch` runs all rows through one forward pass per step (on its own cache,
leaving the session cache for prefix reuse untouched) and yields each row's token as it is
sampled, so batched requests still stream. Rows do not reuse a prefix, which is why the engine
only batches requests that are already waiting: a lone request (the agent loop's case) runs
on the session cache. A runtime with only `generate_batch` (whole rows at the end) works too.
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

    @property
    def sampling_defaults(self) -> dict:
        return dict(getattr(self.backend, "sampling_defaults", None) or {})

    @property
    def takes_constraint(self) -> bool:
        return bool(getattr(self.backend, "takes_constraint", False))

    def forget_prefix(self) -> None:
        forget = getattr(self.backend, "forget_prefix", None)
        if forget is not None:
            forget()

    def complete(self, prompt, **kw) -> Iterator[Generated]:
        return self.backend.complete(prompt, **kw)

    def complete_batch(self, prompts: Sequence[list[int]], *, max_tokens: Sequence[int],
                       stop: Sequence[int], temperature: float, top_p: float,
                       seed: int | None, logprobs: bool, constraints: Sequence | None = None
                       ) -> Iterator[tuple[int, Generated]]:
        """`constraints`: one grammar (or None) per row (the runtime's stream_batch)."""
        sampling = dict(stop_tokens=list(stop), temperature=temperature, top_p=top_p, seed=seed,
                        logprobs=logprobs)
        generated = [0] * len(prompts)
        self.last_batch_usage = [{"prompt_tokens": len(p), "reused_tokens": 0,
                                  "computed_tokens": len(p), "generated_tokens": 0} for p in prompts]
        stream = getattr(self.model, "stream_batch", None)
        if stream is not None:
            steps = stream([list(p) for p in prompts], max_tokens=list(max_tokens), **sampling,
                           **({"constraints": list(constraints)} if constraints else {}))
        elif constraints and any(c is not None for c in constraints):
            raise ValueError("this runtime cannot follow a grammar per row of a batch")
        else:
            rows = self.model.generate_batch([list(p) for p in prompts],
                                             max_tokens=max(max_tokens), **sampling)
            steps = ((i, item) for i, row in enumerate(rows) for item in row[:max_tokens[i]])
        for index, item in steps:
            generated[index] += 1
            self.last_batch_usage[index]["generated_tokens"] = generated[index]
            yield index, Generated(int(item.token), getattr(item, "logprob", None))


def with_batching(backend):
    """The backend, able to batch when its model can."""
    model = getattr(backend, "model", None)
    can = any(callable(getattr(model, name, None)) for name in ("stream_batch", "generate_batch"))
    return BatchingBackend(backend) if can else backend
