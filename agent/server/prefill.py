"""Prefill in steps, so a request whose client left stops within one step.

The runtime prefills a prompt in one `forward` call, and the engine's cancel flag is only
looked at between generated tokens: an abandoned request with a 60k-token prompt would hold
the model for minutes. `prefill` extends the runtime's session cache with the prompt (all but
its last token) `STEP` tokens at a time, checking the flag between steps; `generate` then finds
the whole prefix cached and computes only the last token.

`STEP` is the runtime's own largest prefill step (`forward` splits longer inputs into pieces of
at most 512 tokens), so this costs no throughput: smaller steps would, on a big model on a CPU
every step streams the experts' weights (2-layer gpt-oss-20b, 1,024 tokens: 54 tok/s in steps
of 512, 31 in steps of 128, 20 in steps of 16). One step takes ~0.1-0.4 s on the embedded
model and ~6 s for gpt-oss-20b on a CPU (80 tok/s).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

STEP = 512


def can_prefill(backend) -> bool:
    """Whether the backend is the in-process runtime with a session cache to fill."""
    model = getattr(backend, "model", None)
    cache = getattr(model, "cache", None)
    return callable(getattr(model, "forward", None)) and hasattr(cache, "tokens") \
        and callable(getattr(cache, "truncate", None))


def prefill(model, prompt: list[int], cancelled: threading.Event,
            between: Callable[[float], None] | None = None) -> int | None:
    """Caches `prompt[:-1]`; returns how many tokens were already cached before, or None when
    `cancelled` was set first (the cache then keeps the steps that were computed).
    `between(seconds)` is called after each step with the step's duration (the engine serves
    other requests there)."""
    import torch

    from agent.model.cache import common_prefix
    from agent.model.generate import spelled_prompt
    cache = model.cache
    prompt = spelled_prompt(model, prompt)
    reused = min(common_prefix(cache.tokens[0], prompt), len(prompt) - 1)
    if len(prompt) - 1 - reused <= STEP:
        return reused  # one step: generate does it
    cache.truncate(0, reused)
    with torch.inference_mode():
        for start in range(reused, len(prompt) - 1, STEP):
            if cancelled.is_set():
                return None
            started = time.perf_counter()
            model.forward([prompt[start:min(len(prompt) - 1, start + STEP)]], cache)
            if between is not None:
                between(time.perf_counter() - started)
    return reused
