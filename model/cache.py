"""KV cache: keys and values of every layer, for every position, per batch row.

Slot j of a row holds position j. `tokens[row]` lists the tokens whose keys and values are
stored, which is what prefix reuse compares a new prompt against: the common prefix is kept, the
rest is dropped by `truncate` (a rollback is just a shorter length; nothing is recomputed
except the new suffix).

Memory trade-off: sliding-window layers only ever *attend* to their last `window` positions,
so a ring buffer of `window` slots would do for plain left-to-right decoding (that is what
llama.cpp keeps). But such a buffer cannot roll back: after a rollback to a point more than one
window back the evicted positions are needed again, and the whole prompt must be recomputed,
which is the agent loop's normal case (a new user turn drops the previous turn's analysis).
So sliding layers keep all positions too, like full layers. Per token and layer that is
2 * num_key_value_heads * head_dim values: for gpt-oss-20b in bf16, 2 * 8 * 64 * 2 B = 2 KiB,
so 48 KiB per token for 24 layers instead of 24 KiB with ring buffers (the sliding half):
6 GiB instead of 3 GiB at the full 131072 context, 200 MiB instead of 100 MiB at 4096.
Compute is unaffected: attention on a sliding layer reads only the slots in its window.

The buffers grow by doubling (up to max_position_embeddings), so short conversations stay small.

Layout: position-major [B, slots, Hkv, D], or, where agent.kernels.packed_cache says so (bf16 on
the CPU kernels), the attention kernel's packed layouts (agent.kernels.reference), which decode
reads as they are instead of packing every block of the cache again at every step; the model
then writes with `store_packed` and attends with kernels.attention_packed.
"""
from __future__ import annotations

import torch

from agent import kernels

from .config import GptOssConfig

# extra slots per head in the packed layouts: a head's keys a power of two bytes long would put
# every head's block jb on the same cache sets (prefill at 16k ran 20% slower)
PACKED_PAD = 64


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class KVCache:
    def __init__(self, config: GptOssConfig, batch: int = 1, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", packed: bool | None = None):
        self.config = config
        self.batch = batch
        self.dtype = dtype
        self.device = torch.device(device)
        self.packed = (kernels.packed_cache(dtype, self.device.type, config.head_dim)
                       if packed is None else packed)
        self.capacity = 0
        self.keys: list[torch.Tensor | None] = [None] * config.num_hidden_layers
        self.values: list[torch.Tensor | None] = [None] * config.num_hidden_layers
        self.tokens: list[list[int]] = [[] for _ in range(batch)]

    def length(self, row: int = 0) -> int:
        return len(self.tokens[row])

    def truncate(self, row: int, length: int) -> None:
        """Roll row back to its first `length` tokens (stale slots are overwritten later)."""
        del self.tokens[row][length:]

    def reserve(self, positions: int) -> None:
        """Make room for positions [0, positions)."""
        limit = self.config.max_position_embeddings
        if positions > limit:
            raise ValueError(f"context length {positions} exceeds the model's {limit} positions")
        if positions <= self.capacity:
            return
        capacity = max(256, self.capacity)
        while capacity < positions:
            capacity *= 2
        capacity = min(capacity, limit)
        B, H, D = self.batch, self.config.num_key_value_heads, self.config.head_dim
        if self.packed:  # slots in whole blocks of the kernel (64), padded (PACKED_PAD)
            slots = -(-capacity // 64) * 64 + PACKED_PAD
            shapes, axis = ((B, H, slots // 16, D // 2, 16, 2), (B, H, slots // 2, D, 2)), 2
        else:
            shapes, axis = ((B, capacity, H, D),) * 2, 1
        for store, shape in zip((self.keys, self.values), shapes):
            for layer, old in enumerate(store):
                new = torch.zeros(shape, dtype=self.dtype, device=self.device)
                if old is not None:
                    new.narrow(axis, 0, old.shape[axis]).copy_(old)
                store[layer] = new
        self.capacity = capacity

    def store(self, layer: int, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              window: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Write k, v [B, T, Hkv, D] at positions [B, T]; return the keys and values a query
        at those positions may see (a slice of slots) and the position of the first slot."""
        rows = torch.arange(self.batch, device=self.device)[:, None]
        self.keys[layer][rows, positions] = k.to(self.dtype)
        self.values[layer][rows, positions] = v.to(self.dtype)
        end = int(positions.max()) + 1
        start = 0 if window is None else max(0, int(positions.min()) - window + 1)
        return self.keys[layer][:, start:end], self.values[layer][:, start:end], start

    def store_packed(self, layer: int, positions: torch.Tensor, k: torch.Tensor,
                     v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The packed layouts' `store`: -> the whole packed keys and values and the number of
        slots a query at these positions may see (slot j = position j)."""
        kernels.store_packed(self.keys[layer], self.values[layer], k, v, positions)
        return self.keys[layer], self.values[layer], int(positions.max()) + 1

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)
