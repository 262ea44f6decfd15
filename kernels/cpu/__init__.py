"""The fast CPU path (agent.kernels dispatches here for CPU tensors).

Specialised: `moe` (packed MXFP4 experts: where decode time goes and where prefill flops are),
`linear` (dense layers: bf16 or int8 GEMV for decode), `attention` (a tiled C++ kernel for bf16,
over position-major keys or a KV cache in its packed layouts: `attention_packed`, `store_packed`,
`packed_cache`; torch's fused flash attention for float32), and `rms_norm` / `rope` (one call
instead of many small ops). Every other op falls
back to agent.kernels.reference. When the C++ extension cannot be built (no AVX2, no
compiler) or fails its self-check, for float32 experts or when autograd is needed, these are
the reference itself. Kernels: mxfp4_int8.cpp (decode experts, one source for every ISA),
mxfp4*.cpp (prefill dequantizer, SwiGLU), dense*.cpp (dense GEMV), attention.cpp and
norm_rope.cpp (one source each), module.cpp (bindings), built on first use by build.py.
"""
from .attention import attention, attention_packed, packed_cache, store_packed  # noqa: F401
from .dense import linear  # noqa: F401
from .moe import moe  # noqa: F401
from .norm_rope import rms_norm, rope  # noqa: F401
