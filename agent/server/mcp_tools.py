"""MCP servers as tools of /v1/responses, the way OpenAI's Responses API names them.

`python -m agent serve --mcp LABEL=COMMAND` (or `LABEL=URL`) connects the server once, at
start. A request offers its tools with `{"type": "mcp", "server_label": LABEL}`
(`allowed_tools` narrows them); the model sees them as functions, the grammar allows only
them, and the server runs each call itself. The response lists them in an `mcp_list_tools`
item and reports each call as an `mcp_call` item. Only servers started with the server are
reachable: a request cannot make it connect anywhere (no `server_url` of its own), and there
is no approval step (`require_approval` other than "never" is refused).
"""
from __future__ import annotations

import re
from typing import Mapping

from agent.server.errors import ApiError

LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_spec(spec: str) -> tuple[str | None, str]:
    """'LABEL=COMMAND ARGS' or 'LABEL=URL' -> (LABEL, the rest); no label: (None, spec)."""
    label, sep, rest = spec.partition("=")
    if sep and LABEL.fullmatch(label.strip()) and rest.strip():
        return label.strip(), rest.strip()
    return None, spec.strip()


def connect(specs: list[str], headers: Mapping[str, str] | None = None) -> dict:
    """--mcp values -> {label: a connected agent.tools.mcp.MCPServer}; ValueError naming the
    spec that is malformed, repeated or cannot be reached. `headers` go to the URLs."""
    from agent.tools.mcp import MCPServer
    servers: dict = {}
    try:
        for index, spec in enumerate(specs):
            label, target = parse_spec(spec)
            label = label or f"mcp{index + 1}"
            if label in servers:
                raise ValueError(f"--mcp {spec!r}: the label {label!r} is used twice")
            server = MCPServer.from_spec(target, label=label, headers=headers)
            servers[label] = server
            server.tools()              # connect now: a broken server is a start-up error
    except Exception:
        close(servers)
        raise
    return servers


def close(servers: Mapping) -> None:
    for server in servers.values():
        server.close()


class Offered:
    """The MCP tools one request offers: the tools, their labels, the list items."""

    def __init__(self, servers: Mapping, requested: list[tuple[int, object]]):
        self.tools: list = []
        self.labels: dict[str, str] = {}          # function name -> server label
        self.listings: list[tuple[str, list]] = []
        for index, spec in requested:
            where = f"tools.{index}"
            server = servers.get(spec.server_label)
            if server is None:
                known = ", ".join(sorted(servers)) or "none (start it with --mcp LABEL=COMMAND)"
                raise ApiError(f"no MCP server labelled {spec.server_label!r}; this server has "
                               f"{known}", param=f"{where}.server_label")
            if spec.server_url is not None and spec.server_url != server.target:
                raise ApiError("this server runs only the MCP servers it was started with: "
                               "leave out server_url", param=f"{where}.server_url")
            if spec.require_approval not in (None, "never"):
                raise ApiError("approval of MCP calls is not supported; set require_approval "
                               "to 'never'", param=f"{where}.require_approval")
            allowed = spec.allowed_tool_names()
            tools = [t for t in server.tools() if allowed is None or t.remote_name in allowed]
            unknown = sorted(set(allowed or ()) - {t.remote_name for t in tools})
            if unknown:
                raise ApiError(f"MCP server {spec.server_label!r} has no tool "
                               f"{', '.join(unknown)}", param=f"{where}.allowed_tools")
            for tool in tools:
                if tool.name in self.labels:
                    raise ApiError(f"two offered MCP tools are named {tool.name!r}",
                                   param=f"{where}.server_label")
                self.labels[tool.name] = spec.server_label
            self.tools += tools
            self.listings.append((spec.server_label, tools))

    def names(self) -> dict[str, tuple[str, str]]:
        """function name -> (server label, the tool's name on its server)."""
        return {t.name: (self.labels[t.name], t.remote_name) for t in self.tools}

    def list_item(self, label: str, tools: list, ident: str) -> dict:
        return {"type": "mcp_list_tools", "id": ident, "server_label": label,
                "tools": [{"name": t.remote_name, "description": t.description,
                           "input_schema": t.schema, "annotations": None} for t in tools]}
