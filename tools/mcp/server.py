"""`python -m agent mcp`: the sandboxed python and the browser as tools of any MCP client.

    python -m agent mcp                      stdio (what desktop MCP clients start)
    python -m agent mcp --http 8000          streamable HTTP on http://127.0.0.1:8000/mcp

Tools: `python` (code runs in the bubblewrap sandbox; variables persist between calls),
`browser_search`, `browser_open`, `browser_find` (the browser tool, its pages and cursors
kept between calls). State is kept per MCP session: over stdio one process is one session;
over HTTP a session is one the SDK's session manager set up and checks the `Mcp-Session-Id` of
(protocol versions up to 2025-11-25): its state belongs to the SDK's connection object, never
to a header, and is closed with it (DELETE, idle timeout). Clients of the sessionless
2026-07-28 protocol share one state; such a request carrying a session id is refused (404, as
the SDK answers an unknown id). At most MAX_SESSIONS states are alive; the least recently used
one is closed first. Arguments are checked against each tool's JSON Schema, and a bad call is
answered with a tool error naming the tool and field.
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
IDLE_SECONDS = 30 * 60  # an HTTP session unused this long ends, and its state with it
PYTHON_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["code"],
                 "properties": {"code": {"type": "string", "description": "Python code to run"}}}


class ToolboxSessions:
    """One Toolbox (python worker, browser pages) per MCP session, the newest MAX_SESSIONS."""

    def __init__(self, make: Callable[[], Toolbox], first: Toolbox | None = None):
        self.make = make
        self._open: OrderedDict[str, tuple[Toolbox, asyncio.Lock]] = OrderedDict()
        if first is not None:
            self._open[""] = (first, asyncio.Lock())

    async def get(self, key: str, connection: Any = None) -> tuple[Toolbox, asyncio.Lock]:
        """The state of session `key`; `connection`, the SDK's object for that session,
        closes it when the session ends."""
        if key not in self._open:
            self._open[key] = (self.make(), asyncio.Lock())
            if connection is not None:  # the SDK unwinds this at DELETE, idle timeout, shutdown
                connection.exit_stack.push_async_callback(self.drop, key)
            while len(self._open) > MAX_SESSIONS:
                _, (oldest, _) = self._open.popitem(last=False)
                await oldest.close()
        self._open.move_to_end(key)
        return self._open[key]

    async def drop(self, key: str) -> None:
        """Close the state of an ended session: its sandbox, worker and /mnt/data go."""
        entry = self._open.pop(key, None)
        if entry is not None:
            await entry[0].close()

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
        connection = _connection(ctx)
        if connection.session_id is None:  # stdio, or a sessionless request: the shared state
            toolbox, lock = await sessions.get("")
        else:
            toolbox, lock = await sessions.get(connection.session_id, connection)
        async with lock:  # one call at a time per session: a notebook runs cells in order
            result = await toolbox.call(recipient, text)
        return answer(result.text, result.error)

    server = Server(name, instructions="A sandboxed stateful python and a text web browser.",
                    on_list_tools=list_tools, on_call_tool=call_tool,
                    get_tool_input_schema=lambda n: tools[n][2] if n in tools else None)
    return server, sessions


def _connection(ctx: Any) -> Any:
    """The SDK's Connection of this request: over HTTP one per session its manager set up (a
    request reaches it only with that session's id), a fresh one per sessionless request; the
    `session_id` on it is the manager's, never a header's."""
    # The request context does not expose it yet (the SDK's `Context.connection` will); the
    # per-request ServerSession holds it. Fail loudly rather than let sessions share a state.
    connection = getattr(ctx, "connection", None) or getattr(ctx.session, "_connection", None)
    if connection is None:
        raise RuntimeError("this mcp SDK gives no Connection to tell MCP sessions apart")
    return connection


def refuse_sessionless_ids(app: Callable) -> Callable:
    """ASGI wrapper: the SDK serves a request of a protocol version without sessions (any
    but the handshake versions, as its manager routes them) without looking its
    `Mcp-Session-Id` up, so one that carries an id is refused the way the SDK refuses an
    unknown id (404): no id reaches a session that way, and none is told apart from another."""
    import mcp.types as types
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS  # what the manager routes by
    from starlette.responses import Response
    body = types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(
        code=types.INVALID_REQUEST, message="Session not found"))
    not_found = Response(body.model_dump_json(by_alias=True, exclude_unset=True),
                         status_code=404, media_type="application/json")

    async def guarded(scope, receive, send) -> None:
        if scope["type"] == "http":
            names = [name for name, _ in scope["headers"]]
            # the first one, as the manager reads it
            version = next((v for k, v in scope["headers"] if k == b"mcp-protocol-version"), None)
            if (b"mcp-session-id" in names and version is not None
                    and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS):
                await not_found(scope, receive, send)
                return
        await app(scope, receive, send)
    return guarded


async def serve_stdio(server, sessions: ToolboxSessions) -> None:
    from mcp.server.stdio import stdio_server
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await sessions.close()


async def serve_http(server, sessions: ToolboxSessions, sock: socket.socket,
                     idle_timeout: float = IDLE_SECONDS) -> None:
    import uvicorn
    app = refuse_sessionless_ids(server.streamable_http_app(
        host="127.0.0.1", session_idle_timeout=idle_timeout))
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
