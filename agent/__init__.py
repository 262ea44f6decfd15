"""gpt-oss agents on a local, in-process runtime.

Public API: `Agent`, `tool`, `Session`, `MCPServer`. Heavy modules (torch, the runtime) load
lazily, so `import agent` stays cheap for the command line and for tool-only use.
"""
from __future__ import annotations

import os

# OpenMP threads that spin while idle steal the other core on small machines (10x slower
# prefill measured on 2 busy cores), but a decode step opens ~150 parallel regions a few
# microseconds apart, and waking sleeping threads for each cost ~6 ms per 20b token. So
# threads spin briefly, then sleep. 3,000 rounds (2-core VM, 24-layer 20b shapes): overhead per
# token 15 -> 8.5-9 ms (1,000: 9-10.5; 10,000: no better); the price, when another process
# holds a whole core: 2-layer prefill -30%, decode -4% (1,000: -15%, -4%). Both must be set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "3000")

from agent import shadowing

shadowing.install()  # from here on, `import kernels` (and model, tools, prompts) is never ours

__version__ = "0.1.0"
__all__ = ["Agent", "MCPServer", "Session", "tool"]


def __getattr__(name: str):
    if name == "Agent":
        from agent.loop import Agent
        return Agent
    if name == "Session":
        from agent.session import Session
        return Session
    if name == "tool":
        from agent.tools.function import tool
        return tool
    if name == "MCPServer":
        from agent.tools.mcp import MCPServer
        return MCPServer
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
