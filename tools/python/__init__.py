"""The sandboxed, stateful `python` tool."""
from agent.tools.python.sandbox import Limits, SandboxUnavailable
from agent.tools.python.session import PythonSession
from agent.tools.python.tool import PythonTool

__all__ = ["Limits", "PythonSession", "PythonTool", "SandboxUnavailable"]
