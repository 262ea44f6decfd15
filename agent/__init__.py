"""gpt-oss agents on a local, in-process runtime.

Public API: `Agent`, `tool`, `Session`. Heavy modules (torch, the runtime) load lazily, so
`import agent` stays cheap for the command line and for tool-only use.
"""
from __future__ import annotations

import os

# OpenMP threads that spin while idle steal the other core on small machines (10x slower
# prefill measured on 2 busy cores); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["Agent", "Session", "tool"]


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
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
