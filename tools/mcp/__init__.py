"""MCP both ways: servers' tools for the agent (client.py), and this project's python and
browser tools for any MCP client (server.py, `python -m agent mcp`)."""
from agent.tools.mcp.client import MCPConnectError, MCPServer, MCPTool

__all__ = ["MCPConnectError", "MCPServer", "MCPTool"]
