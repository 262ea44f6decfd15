"""Where a loaded model's weights live (GptOss keeps the structure, this module the placement).

Each checkpoint tensor is moved to the model's device and dtype once. A big model on the CPU
streams its dense matrices and packed experts every token, so those are copied into
transparent huge pages (model/memory.py); whenever a tensor was copied, the checkpoint's pages
behind it are given back. The embedding table stays memory-mapped (tokens read only their
rows) and is read ahead into the page cache. A compact checkpoint (the embedded model) has
embedding rows for its `model.vocab_ids` only: every other token maps to one extra zero row.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from .memory import huge_page_empty, in_huge_pages


class WeightPlacement:
    """Takes tensors out of a loaded checkpoint (`tensors`: name -> tensor, optionally with
    `release(name)` and `prefetch(name)`, as agent.model.checkpoint returns them).

    matrix: how a dense weight is kept (e.g. 8-bit, see GptOss._matrix); huge_pages: copy the
    streamed weights into huge pages; pack_experts: keep MXFP4 expert bytes as our own copy
    (False when they are dequantized anyway, so copying the bytes first would be waste)."""

    def __init__(self, tensors: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype,
                 matrix: Callable[[torch.Tensor], object], huge_pages: bool, pack_experts: bool):
        self.tensors, self.device, self.dtype = tensors, device, dtype
        self.convert_matrix, self.huge_pages, self.pack_experts = matrix, huge_pages, pack_experts
        self.release = getattr(tensors, "release", lambda name: None)

    def take(self, names: str | tuple[str, ...], dtype: torch.dtype, convert=lambda t: t):
        """tensors[name] on our device and dtype (a tuple of names: stacked along dim 0,
        straight into its final memory); if that copied, the file's pages go."""
        names = (names,) if isinstance(names, str) else names
        sources = [self.tensors[name] for name in names]
        if len(sources) == 1:
            result = convert(sources[0].to(self.device, dtype))
            if self.huge_pages:
                result = _in_huge_pages(result)
        else:
            shape = (sum(t.shape[0] for t in sources), *sources[0].shape[1:])
            out = (huge_page_empty if self.huge_pages else torch.empty)(shape, dtype=dtype)
            result = convert(torch.cat([t.to(dtype) for t in sources], out=out).to(self.device))
        if not isinstance(result, torch.Tensor) or result.data_ptr() != sources[0].data_ptr():
            for name in names:
                self.release(name)
        return result

    def weight(self, names):
        """In the model's dtype (biases, the router)."""
        return self.take(names, self.dtype)

    def exact(self, names):
        """In float32 (norm weights, sinks)."""
        return self.take(names, torch.float32)

    def matrix(self, names):
        """A dense matrix as the model keeps it (its dtype, or 8-bit)."""
        return self.take(names, self.dtype, self.convert_matrix)

    def packed(self, name: str) -> torch.Tensor:
        """MXFP4 expert bytes (uint8)."""
        if not self.pack_experts:
            return self.tensors[name].to(self.device)
        return self.take(name, torch.uint8)

    def embedding(self, vocab_size: int):
        """(embedding matrix, vocab_ids, row_of): vocab_ids and row_of (token -> row) are None
        unless the checkpoint is compact; then row n (zeros) stands for every other token,
        whose logit the model sets to -inf so it is never sampled. Keeping the rows compact
        saves the [vocab, hidden] matrices and most of the unembedding work."""
        name = "model.embed_tokens.weight"
        embed = self.tensors[name].to(self.device, self.dtype)
        vocab_ids = row_of = None
        if "model.vocab_ids" in self.tensors:
            vocab_ids = self.tensors["model.vocab_ids"].to(self.device)
            n = vocab_ids.numel()
            row_of = torch.full((vocab_size,), n, dtype=torch.long, device=self.device)
            row_of[vocab_ids] = torch.arange(n, device=self.device)
            embed = torch.cat((embed, embed.new_zeros(1, embed.shape[1])))
        embed = self.convert_matrix(embed)
        if embed is not self.tensors[name]:
            self.release(name)
        elif self.huge_pages:  # stays mapped (tokens touch only their rows): read it ahead
            getattr(self.tensors, "prefetch", lambda name: None)(name)
        return embed, vocab_ids, row_of


def _in_huge_pages(value):
    """A tensor, or the tensors of a converted weight (e.g. an Int8Weight's bytes and scales),
    in huge pages."""
    if isinstance(value, torch.Tensor):
        return in_huge_pages(value)
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{f.name: in_huge_pages(getattr(value, f.name))
                                             for f in dataclasses.fields(value)
                                             if isinstance(getattr(value, f.name), torch.Tensor)})
    return value
