"""gpt-oss agents on a local, in-process runtime.

Public API: `Agent`, `tool`, `Session`. Heavy modules (torch, the runtime) load lazily, so
`import agent` stays cheap for the command line and for tool-only use.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Agent", "Session", "tool"]


def __getattr__(name: str):
    if name in ("Agent", "Session"):
        from agent import loop, session
        return {"Agent": getattr(loop, "Agent", None), "Session": getattr(session, "Session", None)}[name]
    if name == "tool":
        from agent.tools.function import tool
        return tool
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
