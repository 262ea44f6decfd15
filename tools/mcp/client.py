"""MCP servers as tools: each tool a server lists becomes `functions.NAME` with its schema.

    agent = Agent(tools=[MCPServer.stdio("npx", "-y", "@modelcontextprotocol/server-everything"),
                         MCPServer.http("http://127.0.0.1:8000/mcp")])

The connection (the reference `mcp` package's Client, over stdio or streamable HTTP) lives on
a thread of its own with its own event loop: the agent's tools are driven from whatever loop
the ToolSet runs, and the anyio task groups of an MCP session must stay in the task that
opened them. Arguments are checked against the tool's JSON Schema before they are sent;
results come back as text for the model (structured content as JSON, images as a note, a
server's `isError` as a tool error). The server starts when the toolbox first asks for its
tools and stops when the toolbox (the Agent) closes.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shlex
import sys
import threading
from typing import Any, Mapping, TextIO

from agent.tools.base import ToolProvider, ToolResult, run_loop_in_worker
from agent.tools.function import SchemaTool

CLOSE_TIMEOUT = 10.0  # seconds to let a server shut down before its thread is abandoned


class MCPConnectError(ValueError):
    """The server could not be started or reached, or its tools cannot be used as listed."""


class MCPServer(ToolProvider):
    """An MCP server whose tools join the `functions` namespace.

    target: a URL (streamable HTTP) or an `mcp.StdioServerParameters` (a command to run).
    prefix: put before every tool name (two servers with the same tool names, or a server
    tool called `python` or `browser`, which are reserved for the built-ins).
    timeout: seconds per tool call; connect_timeout: seconds to start and list the tools.
    headers: HTTP headers for every request to a streamable HTTP server (an
    `Authorization: Bearer ...` token, say).
    """

    def __init__(self, target: Any, *, prefix: str = "", timeout: float | None = 60.0,
                 connect_timeout: float = 30.0, errlog: TextIO | None = None,
                 label: str | None = None, headers: Mapping[str, str] | None = None):
        self.target = target
        self.headers = dict(headers or {})
        self.prefix = prefix
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.errlog = errlog  # where a stdio server's stderr goes (default: ours)
        self.label = label or _label(target)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client = None
        self._stop: asyncio.Event | None = None
        self._held: concurrent.futures.Future | None = None
        self._tools: list[MCPTool] | None = None
        self._lost: str | None = None  # why the session ended early

    @classmethod
    def stdio(cls, command: str, *args: str, env: dict[str, str] | None = None,
              cwd: str | None = None, **options: Any) -> "MCPServer":
        """A server started as `command args...`, spoken to over its stdin and stdout."""
        from mcp import StdioServerParameters
        params = StdioServerParameters(command=command, args=list(args), env=env, cwd=cwd)
        return cls(params, **options)

    @classmethod
    def http(cls, url: str, **options: Any) -> "MCPServer":
        """A server at a streamable HTTP endpoint (usually ending in /mcp)."""
        return cls(url, **options)

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "MCPServer":
        """The command line's form: a URL, or one string with the command and its arguments."""
        spec = spec.strip()
        if re.match(r"https?://", spec):
            return cls.http(spec, **options)
        try:
            words = shlex.split(spec)
        except ValueError as e:  # an unclosed quote
            raise MCPConnectError(f"--mcp {spec!r}: {e}") from None
        if not words:
            raise MCPConnectError("--mcp needs a command or a URL")
        return cls.stdio(words[0], *words[1:], **options)

    # ---- the toolbox's side ---------------------------------------------------------------
    def tools(self) -> list["MCPTool"]:
        if self._tools is None:
            listed = self._connect()
            try:
                self._tools = [MCPTool(self, tool) for tool in listed]
            except ValueError as e:
                self.close()
                raise MCPConnectError(f"MCP server {self.label!r}: {e}") from None
        return self._tools

    async def call(self, name: str, arguments: dict[str, Any]):
        """The server's CallToolResult for one call, awaited from any event loop."""
        if self._client is None:
            raise RuntimeError(self._lost or "the server is not connected")
        future = asyncio.run_coroutine_threadsafe(self._client.call_tool(name, arguments),
                                                  self._loop)
        return await asyncio.wrap_future(future)  # cancelling this cancels the call there

    def close(self) -> None:
        if self._loop is None:
            return
        loop, thread, held = self._loop, self._thread, self._held
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        try:
            held.result(timeout=CLOSE_TIMEOUT)
        except Exception:
            pass  # the session's own failure was reported when it happened
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT)
        self._loop = self._thread = self._client = self._stop = self._held = None
        self._tools = None

    def __repr__(self) -> str:
        return f"<MCPServer {self.label!r}>"

    # ---- the connection's thread ----------------------------------------------------------
    def _connect(self) -> list:
        self._lost = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=run_loop_in_worker, args=(self._loop,),
                                        daemon=True, name=f"mcp {self.label[:40]}")
        self._thread.start()
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._stop = asyncio.Event()  # bound to the thread's loop on first use there
        self._held = asyncio.run_coroutine_threadsafe(self._hold(ready), self._loop)
        try:
            return ready.result(timeout=self.connect_timeout)
        except concurrent.futures.TimeoutError:
            self.close()
            raise MCPConnectError(f"MCP server {self.label!r}: no tool list within "
                                  f"{self.connect_timeout:g} seconds") from None
        except Exception as e:
            self.close()
            raise MCPConnectError(f"MCP server {self.label!r}: cannot connect: "
                                  f"{_reason(e)}") from None

    async def _hold(self, ready: concurrent.futures.Future) -> None:
        """Open the session, list the tools, then keep the session open until close()."""
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client
        try:
            async with contextlib.AsyncExitStack() as held:
                server = self.target
                if isinstance(server, StdioServerParameters):
                    errlog = self.errlog or _stderr() or held.enter_context(open(os.devnull, "w"))
                    server = stdio_client(server, errlog=errlog)
                elif isinstance(server, str) and self.headers:
                    from mcp.client.streamable_http import (create_mcp_http_client,
                                                            streamable_http_client)
                    http = await held.enter_async_context(create_mcp_http_client(headers=self.headers))
                    server = streamable_http_client(server, http_client=http)
                client = await held.enter_async_context(Client(server))
                listed = await _list_tools(client)
                self._client = client
                ready.set_result(listed)
                await self._stop.wait()
        except BaseException as e:
            self._lost = f"the MCP server {self.label!r} stopped: {_reason(e)}"
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError(str(e)))
            if not isinstance(e, Exception):
                raise
        finally:
            self._client = None


async def _list_tools(client: Any) -> list:
    listed, cursor = [], None
    for _ in range(100):  # pages; a server that never ends its list is cut off
        page = await client.list_tools(cursor=cursor)
        listed.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return listed


class MCPTool(SchemaTool):
    """One tool of an MCP server, as `functions.NAME`."""

    def __init__(self, server: MCPServer, listed: Any):
        self.server = server
        self.remote_name = listed.name
        local = re.sub(r"\W", "_", server.prefix + listed.name)
        local = "_" + local if local[:1].isdigit() else local
        super().__init__(local, listed.description or listed.title or "",
                         dict(listed.input_schema or {}), timeout=server.timeout)

    async def invoke(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            result = await self.server.call(self.remote_name, arguments)
        except Exception as e:  # the server went away, or answered with a protocol error
            return ToolResult(f"Error: {self.name} failed on the MCP server "
                              f"{self.server.label!r}: {_reason(e)}", error=True)
        return render_result(result)

    def __repr__(self) -> str:
        return f"<MCP tool functions.{self.name} from {self.server.label!r}>"


def render_result(result: Any) -> ToolResult:
    """A CallToolResult as the model reads it; `data` keeps the structured content."""
    parts = [_block_text(block) for block in result.content or ()]
    text = "\n".join(p for p in parts if p)
    structured = result.structured_content
    if not any(getattr(b, "type", "") == "text" for b in result.content or ()) \
            and structured is not None:
        text = "\n".join(p for p in (json.dumps(structured, ensure_ascii=False), text) if p)
    if result.is_error:
        text = text if text.lower().startswith("error") else f"Error: {text or 'the tool failed'}"
    return ToolResult(text, data=structured, error=bool(result.is_error))


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text
    if kind in ("image", "audio"):
        size = len((block.data or "").rstrip("=")) * 3 // 4  # the base64 text decoded
        return f"[{kind} ({block.mime_type}, {size} bytes): not shown]"
    if kind == "resource":
        resource = block.resource
        if getattr(resource, "text", None) is not None:
            return resource.text
        return f"[resource {resource.uri} ({resource.mime_type or 'binary'}): not shown]"
    if kind == "resource_link":
        return f"[resource link: {block.name} {block.uri}]"
    return f"[{kind or 'unknown'} content: not shown]"


def add_header_flag(parser) -> None:
    """--mcp-header 'NAME: VALUE' (repeatable): headers for the command's MCP URLs."""
    parser.add_argument("--mcp-header", action="append", type=_header, default=[],
                        metavar="'NAME: VALUE'", help="an HTTP header sent to the --mcp URLs "
                        "(a token, say); repeatable")


def _header(text: str) -> tuple[str, str]:
    import argparse
    name, sep, value = text.partition(":")
    if not sep or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'NAME: VALUE'")
    return name.strip(), value.strip()


def _label(target: Any) -> str:
    if isinstance(target, str):
        return target
    if hasattr(target, "command"):  # StdioServerParameters
        return shlex.join([target.command, *target.args])
    return type(target).__name__  # another mcp Transport


def _reason(error: BaseException) -> str:
    """The innermost message of an error (anyio wraps failures in exception groups)."""
    while getattr(error, "exceptions", None):  # an ExceptionGroup
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _stderr() -> TextIO | None:
    """Our stderr if it is a real file (a subprocess needs a descriptor), else None."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return None
