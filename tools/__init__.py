"""Tools the model can call: `browser`, a sandboxed `python`, and your typed functions.

    from agent.tools import Toolbox, tool

    @tool
    def get_weather(city: str) -> str:
        "Current weather in a city."
        ...

    toolbox = Toolbox(["browser", "python", get_weather])
    result = await toolbox.call("functions.get_weather", '{"city": "Paris"}')

The browser and python packages load on first use, so importing this stays cheap.
"""
from agent.tools.base import Tool, ToolError, ToolResult
from agent.tools.function import FunctionTool, tool
from agent.tools.toolbox import Toolbox

__all__ = ["BrowserTool", "FunctionTool", "PythonTool", "Tool", "ToolError", "ToolResult",
           "Toolbox", "tool"]


def __getattr__(name: str):
    if name == "BrowserTool":
        from agent.tools.browser import BrowserTool
        return BrowserTool
    if name == "PythonTool":
        from agent.tools.python import PythonTool
        return PythonTool
    raise AttributeError(f"module 'agent.tools' has no attribute {name!r}")
