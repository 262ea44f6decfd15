"""`Toolbox`: the set of tools one agent session can call, and the dispatcher for them.

It builds the two places tools appear in a Harmony prompt (the system message's built-in
namespaces and the developer message's `functions` list), and turns every call the model makes
into a `ToolResult`: unknown recipients, bad JSON, validation errors, timeouts and exceptions
all come back as text the model can act on.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable

from agent.harmony.grammar import closed
from agent.tools.base import Tool, ToolProvider, ToolResult

ToolSpec = Tool | ToolProvider | str | Callable[..., Any]


def builtin_tool(name: str, **options: Any) -> Tool:
    """The built-in tool called `name` ("browser" or "python")."""
    if name == "browser":
        from agent.tools.browser import BrowserTool
        return BrowserTool(**options)
    if name == "python":
        from agent.tools.python import PythonTool
        return PythonTool(**options)
    raise ValueError(f"unknown built-in tool {name!r}; the built-ins are 'browser' and 'python'")


def as_tool(spec: ToolSpec) -> Tool:
    if isinstance(spec, Tool):
        return spec
    if isinstance(spec, str):
        return builtin_tool(spec)
    if callable(spec):
        from agent.tools.function import FunctionTool
        return FunctionTool(spec)
    raise TypeError(f"cannot use {spec!r} as a tool: pass a Tool, 'browser', 'python', "
                    "a typed function or an MCP server")


class Toolbox:
    def __init__(self, tools: Iterable[ToolSpec] = ()):
        self.tools: list[Tool] = []
        self.providers: list[ToolProvider] = []
        self._by_recipient: dict[str, Tool] = {}
        try:
            for spec in tools:
                self.add(spec)
        except BaseException:
            self._close_providers()  # a server started for a toolbox that never came to be
            raise

    def add(self, spec: ToolSpec) -> Tool | list[Tool]:
        """Add one tool, or every tool of a provider (returned as a list)."""
        if isinstance(spec, ToolProvider):
            try:
                tools = spec.tools()
                self._check_free(tools)
            except BaseException:
                spec.close()
                raise
            self.providers.append(spec)
            return [self.add(tool) for tool in tools]
        tool = as_tool(spec)
        self._check_free([tool])
        self.tools.append(tool)
        for recipient in tool.recipients():
            self._by_recipient[recipient] = tool
        return tool

    def _check_free(self, tools: list[Tool]) -> None:
        """A ValueError naming both tools when a recipient would answer to two of them."""
        taken = dict(self._by_recipient)
        for tool in tools:
            for recipient in tool.recipients():
                if recipient in taken:
                    raise ValueError(f"two tools answer to {recipient!r}: {taken[recipient]!r} "
                                     f"and {tool!r}; rename one (MCPServer(..., prefix=...) "
                                     "renames a server's tools)")
                taken[recipient] = tool

    def _close_providers(self) -> None:
        for provider in self.providers:
            try:
                provider.close()
            except Exception:
                pass  # best effort, as in close()
        self.providers.clear()

    def __iter__(self):
        return iter(self.tools)

    def __len__(self) -> int:
        return len(self.tools)

    def get(self, namespace_or_recipient: str) -> Tool | None:
        """The tool for a recipient ("browser.open", "functions.f") or a namespace ("python")."""
        found = self.resolve(namespace_or_recipient)
        if found is not None:
            return found
        return next((t for t in self.tools if t.namespace == namespace_or_recipient), None)

    def recipients(self) -> list[str]:
        return list(self._by_recipient)

    def namespace_configs(self) -> list:
        """System-message tool sections (browser, python), in registration order."""
        return [c for t in self.tools if (c := t.namespace_config()) is not None]

    def function_descriptions(self) -> list:
        """Developer-message `functions` namespace entries, in registration order."""
        return [d for t in self.tools if (d := t.tool_description()) is not None]

    def argument_schemas(self) -> dict[str, dict | None]:
        """Every recipient -> the JSON Schema of its arguments (None: free-form, e.g. code)."""
        schemas = {f"functions.{d.name}": d.parameters for d in self.function_descriptions()}
        for config in self.namespace_configs():   # built-in tools take only their keys
            schemas.update({f"{config.name}.{d.name}": closed(d.parameters) for d in config.tools})
        return {recipient: schemas.get(recipient) for recipient in self.recipients()}

    def resolve(self, recipient: str) -> Tool | None:
        recipient = recipient.strip()
        if recipient in self._by_recipient:
            return self._by_recipient[recipient]
        # A bare function name is a common slip; the intent is unambiguous.
        return self._by_recipient.get(f"functions.{recipient}")

    def author_for(self, recipient: str) -> str:
        """The author name of the tool message answering a call to `recipient`."""
        tool = self.resolve(recipient)
        if tool is not None and tool.namespace == "functions" and "." not in recipient:
            return f"functions.{recipient.strip()}"
        return recipient.strip()

    async def call(self, recipient: str, arguments: str) -> ToolResult:
        tool = self.resolve(recipient)
        if tool is None:
            known = ", ".join(self.recipients()) or "none"
            return ToolResult(f"Error: there is no tool named {recipient!r}. "
                              f"Available tools: {known}.", error=True)
        name = self.author_for(recipient)
        try:
            if tool.timeout is None:
                return await tool.call(name, arguments)
            return await asyncio.wait_for(tool.call(name, arguments), tool.timeout)
        except asyncio.TimeoutError:
            return ToolResult(f"Error: {name} did not finish within {tool.timeout:g} seconds "
                              "and was cancelled.", error=True)
        except Exception as e:  # a tool bug must not crash the agent loop
            return ToolResult(f"Error: {name} failed: {type(e).__name__}: {e}", error=True)

    async def close(self) -> None:
        for tool in self.tools:
            try:
                await tool.close()
            except Exception:
                pass  # closing is best effort; one tool must not keep others open
        await asyncio.to_thread(self._close_providers)
