"""`python -m agent tool NAME ARGS`: run one tool call and print exactly what the model reads.

    python -m agent tool browser.search '{"query": "gpt-oss"}'
    python -m agent tool browser.open '{"id": "https://example.org"}'
    echo 'print(2+2)' | python -m agent tool python -
    python -m agent tool functions.add '{"a": 1, "b": 2}' --tools mymodule:add
    python -m agent tool functions.add '{"a": 1, "b": 2}' --mcp "python my_server.py"

ARGS is the JSON arguments, or the code for `python`; `-` reads it from stdin.
Exit status: 0 when the tool ran (even if it reported an error to the model, which is then
printed like any result), 2 for an unknown tool or unusable arguments, 3 when the tool cannot
be set up here (no bubblewrap, a bad --search-folder, --tools or --mcp); messages go to stderr.
`--state FILE` keeps the browser's pages between invocations, so `browser.find` and link ids
work across commands. External checks use this command; keep it stable.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path

from agent.tools.base import Tool
from agent.tools.function import FunctionTool
from agent.tools.toolbox import Toolbox

USAGE_ERROR = 2
UNAVAILABLE = 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent tool",
        description="Run one tool call and print what the model would see.")
    p.add_argument("name", help="browser.search | browser.open | browser.find | python | "
                                "functions.NAME (with --tools or --mcp)")
    p.add_argument("args", nargs="?", default="",
                   help="JSON arguments, or code for python; '-' reads stdin")
    add_tool_options(p)
    p.add_argument("--state", metavar="FILE", help="browser pages kept between invocations")
    p.add_argument("--tools", action="append", default=[], metavar="MODULE:ATTR",
                   help="load function tools (a @tool, a typed function, or a list of them)")
    p.add_argument("--mcp", action="append", default=[], metavar="'COMMAND ARGS' | URL",
                   help="load an MCP server's tools as functions.NAME (repeatable)")
    from agent.tools.mcp.client import add_header_flag
    add_header_flag(p)
    return p


def add_tool_options(p: argparse.ArgumentParser) -> None:
    """How the built-ins are set up (shared with `python -m agent mcp`)."""
    p.add_argument("--allow-private", action="store_true",
                   help="let the browser open loopback/private/link-local addresses")
    p.add_argument("--search-folder", metavar="DIR",
                   help="search a local folder of documents instead of DuckDuckGo")
    p.add_argument("--search-base-url", metavar="URL",
                   help="with --search-folder: results link to URL/<relative path>")
    p.add_argument("--timeout", type=float, default=None,
                   help="python: wall-clock seconds per call; browser: seconds per fetch")
    p.add_argument("--unsandboxed", action="store_true",
                   help="python without bubblewrap (unsafe; for machines without bwrap)")


def load_functions(specs: list[str]) -> list[Tool]:
    tools: list[Tool] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise ValueError(f"--tools {spec!r}: expected MODULE:ATTR")
        value = getattr(importlib.import_module(module_name), attr)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            tools.append(item if isinstance(item, Tool) else FunctionTool(item))
    return tools


def build_tool(options, namespace: str) -> Tool:
    if namespace == "browser":
        from agent.tools.browser import BrowserTool, Fetcher, LocalFolderBackend
        backend = (LocalFolderBackend(options.search_folder, base_url=options.search_base_url)
                   if options.search_folder else None)
        fetcher = Fetcher(allow_private=options.allow_private,
                          **({"timeout": options.timeout} if options.timeout else {}))
        browser = BrowserTool(backend, fetcher=fetcher)
        state = getattr(options, "state", None)
        if state and Path(state).exists():
            browser.load_state(json.loads(Path(state).read_text()))
        return browser
    from agent.tools.python import PythonTool
    return PythonTool(sandbox="none" if options.unsandboxed else "bwrap",
                      **({"timeout": options.timeout} if options.timeout else {}))


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    name = options.name.strip()
    arguments = sys.stdin.read() if options.args == "-" else options.args
    namespace = name.split(".", 1)[0]
    try:
        if namespace in ("browser", "python"):
            toolbox = Toolbox([build_tool(options, namespace)])
        else:
            from agent.tools.mcp import MCPServer
            servers = [MCPServer.from_spec(spec, headers=dict(options.mcp_header))
                       for spec in options.mcp]
            toolbox = Toolbox([*load_functions(options.tools), *servers])
    except Exception as e:
        print(f"error: {e}", file=sys.stderr)
        return UNAVAILABLE
    if toolbox.resolve(name) is None:
        known = (", ".join(toolbox.recipients())
                 or "none loaded (use --tools MODULE:ATTR or --mcp COMMAND)")
        print(f"error: unknown tool {name!r}; known: {known}", file=sys.stderr)
        asyncio.run(toolbox.close())
        return USAGE_ERROR
    result = asyncio.run(_call_and_close(toolbox, name, arguments))
    if isinstance(result.data, dict) and result.data.get("invalid_arguments"):
        print(f"error: {result.text}", file=sys.stderr)
        return USAGE_ERROR
    if options.state and namespace == "browser":
        Path(options.state).write_text(json.dumps(toolbox.get("browser").state()))
    print(result.text)
    return 0


async def _call_and_close(toolbox: Toolbox, name: str, arguments: str):
    try:
        return await toolbox.call(name, arguments)
    finally:
        await toolbox.close()
