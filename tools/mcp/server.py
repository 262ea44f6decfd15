"""`python -m agent mcp`: the sandboxed python and the browser as tools of any MCP client.

    python -m agent mcp                      stdio (what desktop MCP clients start)
    python -m agent mcp --http 8000          streamable HTTP on http://127.0.0.1:8000/mcp

Tools: `python` (code runs in the bubblewrap sandbox; variables persist between calls),
`browser_search`, `browser_open`, `browser_find` (the browser tool, its pages and cursors
kept between calls). State is kept per MCP session: over stdio one process is one session;
over HTTP a session is a client's `Mcp-Session-Id` (protocol versions up to 2025-11-25), while
clients of the sessionless 2026-07-28 protocol share one state. At most MAX_SESSIONS states
are alive; the least recently used one is closed first. Arguments are checked against each
tool's JSON Schema, and a bad call is answered with a tool error naming the tool and field.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections import OrderedDict
from typing import Any, Callable

from agent.tools.base import InvalidArguments
from agent.tools.function import argument_validator, check_arguments
from agent.tools.toolbox import Toolbox

MAX_SESSIONS = 8
PYTHON_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["code"],
                 "properties": {"code": {"type": "string", "description": "Python code to run"}}}


class ToolboxSessions:
    """One Toolbox (python worker, browser pages) per MCP session, the newest MAX_SESSIONS."""

    def __init__(self, make: Callable[[], Toolbox], first: Toolbox | None = None):
        self.make = make
        self._open: OrderedDict[str, tuple[Toolbox, asyncio.Lock]] = OrderedDict()
        if first is not None:
            self._open[""] = (first, asyncio.Lock())

    async def get(self, key: str) -> tuple[Toolbox, asyncio.Lock]:
        if key not in self._open:
            self._open[key] = (self.make(), asyncio.Lock())
            while len(self._open) > MAX_SESSIONS:
                _, (oldest, _) = self._open.popitem(last=False)
                await oldest.close()
        self._open.move_to_end(key)
        return self._open[key]

    async def close(self) -> None:
        while self._open:
            _, (toolbox, _) = self._open.popitem()
            await toolbox.close()


def exposed_tools(toolbox: Toolbox) -> dict[str, tuple[str, str, dict]]:
    """MCP tool name -> (our recipient, description, input schema) for the built-ins."""
    out: dict[str, tuple[str, str, dict]] = {}
    python = toolbox.get("python")
    if python is not None:
        session = python.session
        where = ("in a sandbox without network access; files persist in /mnt/data"
                 if session.sandbox == "bwrap" else
                 f"WITHOUT a sandbox; files persist in {session.workspace}")
        out["python"] = ("python", (
            "Run Python code in a stateful session: variables, imports and files persist "
            "between calls, and the value of a last expression is shown, as in a notebook. A "
            f"call times out after {session.limits.timeout:g} seconds (the session then "
            f"restarts empty). The code runs {where}."), PYTHON_SCHEMA)
    browser = toolbox.get("browser")
    if browser is not None:
        for function in browser.namespace_config().tools:
            out[f"browser_{function.name}"] = (f"browser.{function.name}", function.description,
                                               function.parameters)
    return out


def build_server(make_toolbox: Callable[[], Toolbox], *, name: str = "gpt-oss-agent"):
    """The low-level MCP Server for the tools `make_toolbox()` builds, and its sessions."""
    import mcp.types as types
    from mcp.server import Server

    first = make_toolbox()  # built now, so a missing sandbox is an error at startup
    tools = exposed_tools(first)
    validators = {n: argument_validator(n, schema) for n, (_, _, schema) in tools.items()}
    sessions = ToolboxSessions(make_toolbox, first)

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=n, description=description, input_schema=schema)
            for n, (_, description, schema) in tools.items()])

    async def call_tool(ctx, params) -> types.CallToolResult:
        def answer(text: str, error: bool = False) -> types.CallToolResult:
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                        is_error=error)
        if params.name not in tools:
            return answer(f"Error: there is no tool named {params.name!r}. "
                          f"Available tools: {', '.join(tools)}.", error=True)
        recipient, _, _ = tools[params.name]
        arguments = params.arguments or {}
        try:
            check_arguments(params.name, validators[params.name], arguments)
        except InvalidArguments as e:
            return answer(str(e), error=True)
        text = arguments["code"] if recipient == "python" else json.dumps(arguments)
        toolbox, lock = await sessions.get(_session_key(ctx))
        async with lock:  # one call at a time per session: a notebook runs cells in order
            result = await toolbox.call(recipient, text)
        return answer(result.text, result.error)

    server = Server(name, instructions="A sandboxed stateful python and a text web browser.",
                    on_list_tools=list_tools, on_call_tool=call_tool,
                    get_tool_input_schema=lambda n: tools[n][2] if n in tools else None)
    return server, sessions


def _session_key(ctx: Any) -> str:
    request = getattr(ctx, "request", None)
    headers = getattr(request, "headers", None)
    return (headers.get("mcp-session-id") or "") if headers is not None else ""


async def serve_stdio(server, sessions: ToolboxSessions) -> None:
    from mcp.server.stdio import stdio_server
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await sessions.close()


async def serve_http(server, sessions: ToolboxSessions, sock: socket.socket) -> None:
    import uvicorn
    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        await sessions.close()


def parser() -> argparse.ArgumentParser:
    from agent.tools.cli import add_tool_options
    p = argparse.ArgumentParser(prog="python -m agent mcp",
                                description="Serve the python and browser tools over MCP.")
    p.add_argument("--http", type=int, metavar="PORT",
                   help="streamable HTTP on http://127.0.0.1:PORT/mcp instead of stdio "
                        "(0: any free port, printed on stderr)")
    p.add_argument("--tools", default="python,browser",
                   help="comma-separated: python, browser (default: both)")
    add_tool_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from agent.tools.cli import build_tool
    options = parser().parse_args(argv)
    names = [n.strip() for n in options.tools.split(",") if n.strip()]
    unknown = [n for n in names if n not in ("python", "browser")]
    if unknown or not names:
        print(f"error: --tools takes python and/or browser, not {options.tools!r}", file=sys.stderr)
        return 2
    sock = None
    if options.http is not None:  # the port first: a taken one is the commonest failure
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", options.http))
            sock.listen(128)  # clients wait in the backlog while the server starts
        except OSError as e:
            sock.close()
            print(f"error: cannot listen on 127.0.0.1:{options.http}: {e.strerror}",
                  file=sys.stderr)
            return 3
    try:
        server, sessions = build_server(lambda: Toolbox([build_tool(options, n) for n in names]))
    except Exception as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if sock is None:
        asyncio.run(serve_stdio(server, sessions))
        return 0
    print(f"serving MCP on http://127.0.0.1:{sock.getsockname()[1]}/mcp", file=sys.stderr,
          flush=True)
    try:
        asyncio.run(serve_http(server, sessions, sock))
    except KeyboardInterrupt:
        pass
    return 0
