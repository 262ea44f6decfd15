"""Prefill in pieces, so a request whose client left stops within about a second.

The runtime prefills a prompt in one `forward` call, and the engine's cancel flag is only
looked at between generated tokens: an abandoned request with a 100k-token prompt would hold
the model for minutes. `prefill` extends the runtime's session cache with the prompt (all but
its last token) in chunks sized to take about `CHUNK_SECONDS` each, checking the flag between
them; `generate` then finds the whole prefix cached and computes only the last token.
"""
from __future__ import annotations

import threading
import time

CHUNK_SECONDS = 0.5
FIRST_CHUNK = 128
MIN_CHUNK = 16
MAX_CHUNK = 4096


def can_prefill(backend) -> bool:
    """Whether the backend is the in-process runtime with a session cache to fill."""
    model = getattr(backend, "model", None)
    cache = getattr(model, "cache", None)
    return callable(getattr(model, "forward", None)) and hasattr(cache, "tokens") \
        and callable(getattr(cache, "truncate", None))


class Prefill:
    """Remembers how fast the model prefills (tokens per second) to size the next chunks."""

    def __init__(self, seconds: float = CHUNK_SECONDS):
        self.seconds = seconds
        self.rate: float | None = None

    def chunk(self) -> int:
        if self.rate is None:
            return FIRST_CHUNK
        return max(MIN_CHUNK, min(MAX_CHUNK, int(self.rate * self.seconds)))

    def __call__(self, model, prompt: list[int], cancelled: threading.Event) -> int | None:
        """Caches `prompt[:-1]`; returns how many tokens were already cached before, or None
        when `cancelled` was set first (the cache then keeps what was computed)."""
        import torch

        from agent.model.cache import common_prefix
        cache = model.cache
        reused = min(common_prefix(cache.tokens[0], prompt), len(prompt) - 1)
        if len(prompt) - 1 - reused <= self.chunk():
            return reused  # short enough: generate prefills it in one go
        cache.truncate(0, reused)
        done = reused
        with torch.inference_mode():
            while done < len(prompt) - 1:
                if cancelled.is_set():
                    return None
                piece = prompt[done:min(len(prompt) - 1, done + self.chunk())]
                started = time.perf_counter()
                model.forward([piece], cache)
                rate = len(piece) / max(time.perf_counter() - started, 1e-6)
                # later chunks attend to more keys: follow a slowing rate quickly
                self.rate = rate if self.rate is None else min(rate, 0.5 * (self.rate + rate))
                done += len(piece)
        return reused
