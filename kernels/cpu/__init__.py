"""The fast CPU path (agent.kernels dispatches here for CPU tensors).

Specialised: `moe` (packed MXFP4 experts: where decode time goes and where prefill flops are),
`linear` (dense layers: bf16 or int8 GEMV for decode) and `attention` (prefill: torch's fused
CPU flash attention with the sinks applied from its log-sum-exp). Every other op falls back to
agent.kernels.reference. When the C++ extension cannot be built (no AVX-512-BF16, no compiler)
or autograd is needed, both are the reference itself. Kernels: kernels.cpp, built by build.py.
"""
from .attention import attention  # noqa: F401
from .dense import linear  # noqa: F401
from .moe import moe  # noqa: F401
