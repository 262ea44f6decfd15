"""Weights in transparent huge pages (2 MiB) for CPU decoding.

Decoding streams every weight once per token. Read through 4 KiB pages (a memory-mapped
checkpoint, or ordinary allocations) the TLB misses cost about a sixth of the bandwidth: the
unembedding GEMV on the 2-core development VM read 39-43 GB/s mapped from the file and
49.6 GB/s from huge pages. So the runtime copies the big streamed weights into anonymous
memory advised to use huge pages, and gives the file's pages back.
"""
from __future__ import annotations

import math
import mmap

import torch

HUGE_PAGE = 2 << 20


def huge_page_empty(shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized CPU tensor in anonymous memory advised (MADV_HUGEPAGE) to use huge
    pages; where the kernel has none, or it is smaller than one, it is ordinary memory."""
    count = math.prod(shape)
    if count * dtype.itemsize < HUGE_PAGE:
        return torch.empty(shape, dtype=dtype)
    size = -(-count * dtype.itemsize // HUGE_PAGE) * HUGE_PAGE
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buffer.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError):  # no THP on this kernel: plain pages still work
        pass
    return torch.frombuffer(buffer, dtype=dtype, count=count).view(shape)


def in_huge_pages(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of a CPU tensor in huge pages (tensors under one huge page come back as is)."""
    if tensor.device.type != "cpu" or tensor.numel() * tensor.element_size() < HUGE_PAGE:
        return tensor
    return huge_page_empty(tensor.shape, tensor.dtype).copy_(tensor)
