"""The fast CPU path (agent.kernels dispatches here for CPU tensors).

Only `moe` is specialised: it is where decode time goes (streaming the packed experts) and
where prefill flops are. Every other op falls back to agent.kernels.reference. When the C++
extension cannot be built (no AVX-512-BF16, no compiler) or autograd is needed, `moe` is the
reference itself.
"""
from .moe import moe  # noqa: F401
