"""Tools the model can call: `browser`, a sandboxed `python`, and your typed functions.

    from agent.tools import Toolbox, tool

    @tool
    def get_weather(city: str) -> str:
        "Current weather in a city."
        ...

    toolbox = Toolbox(["browser", "python", get_weather, MCPServer.stdio("my-mcp-server")])
    result = await toolbox.call("functions.get_weather", '{"city": "Paris"}')

A function tool also comes from a raw JSON Schema and a callable (`SchemaTool`, or
`@tool(schema=...)`), and an MCP server (`MCPServer`) brings all of its tools at once.
The browser, python and mcp packages load on first use, so importing this stays cheap.
"""

if __name__ != "agent.tools":  # run from the repo root as `tools`: see agent/shadowing.py
    from agent.shadowing import stand_aside
    stand_aside(__name__)
from agent.tools.base import Tool, ToolError, ToolProvider, ToolResult
from agent.tools.function import FunctionTool, SchemaTool, tool
from agent.tools.toolbox import Toolbox

__all__ = ["BrowserTool", "FunctionTool", "MCPServer", "PythonTool", "SchemaTool", "Tool",
           "ToolError", "ToolProvider", "ToolResult", "Toolbox", "tool"]


def __getattr__(name: str):
    if name == "BrowserTool":
        from agent.tools.browser import BrowserTool
        return BrowserTool
    if name == "PythonTool":
        from agent.tools.python import PythonTool
        return PythonTool
    if name == "MCPServer":
        from agent.tools.mcp import MCPServer
        return MCPServer
    raise AttributeError(f"module 'agent.tools' has no attribute {name!r}")
