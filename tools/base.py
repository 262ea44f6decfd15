"""The tool interface: what the agent loop calls and what the model sees.

A tool lives in one Harmony namespace. The built-ins `browser` and `python` are described in
the system message (a `ToolNamespaceConfig`); developer functions (`functions.NAME`) are listed
in the developer message (a `ToolDescription`). Whatever happens inside a tool, the loop gets a
`ToolResult` back: failures are text for the model to read, never exceptions.
"""
from __future__ import annotations

import json
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the harmony layer is below us; imported lazily to keep `import` cheap
    from agent.harmony.messages import ToolDescription, ToolNamespaceConfig

BUILTIN_NAMESPACES = ("browser", "python")


@dataclass
class ToolResult:
    """What a tool returns: `text` is exactly what the model reads; `data` is for programs."""
    text: str
    data: Any = None
    error: bool = False


class ToolError(Exception):
    """A failure the model caused or can fix; its message goes back to the model verbatim."""


class InvalidArguments(ToolError):
    """The call's arguments are unusable (not JSON, wrong fields); nothing ran."""


def invalid_arguments_result(error: InvalidArguments) -> ToolResult:
    return ToolResult(str(error), data={"invalid_arguments": True}, error=True)


class Tool(ABC):
    namespace: str = "functions"  # "functions" | "browser" | "python"
    name: str = ""
    description: str = ""
    timeout: float | None = None  # seconds the Toolbox waits for `call`; None: no limit

    def recipients(self) -> list[str]:
        """The recipient strings the model uses to address this tool."""
        if self.namespace == "functions":
            return [f"functions.{self.name}"]
        return [self.namespace]

    @abstractmethod
    async def call(self, recipient: str, arguments: str) -> ToolResult:
        """Run one call. `arguments` is the raw message text (JSON, or code for python)."""

    def namespace_config(self) -> "ToolNamespaceConfig | None":
        """The system-message section of a built-in tool; None for developer functions."""
        return None

    def tool_description(self) -> "ToolDescription | None":
        """The developer-message entry of a function tool; None for built-ins."""
        return None

    async def close(self) -> None:
        """Release processes, files and connections. Safe to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(self.recipients())}>"


class ToolProvider(ABC):
    """A source of several tools behind one connection (an MCP server). The Toolbox asks for
    its tools when it is added and closes it with the others."""

    @abstractmethod
    def tools(self) -> list[Tool]:
        """The tools, connecting first if needed (blocking: it is called from sync setup)."""

    def close(self) -> None:
        """Disconnect. Blocking, safe to call twice; `tools()` may connect again after it."""


def parse_json_arguments(recipient: str, arguments: str) -> dict[str, Any]:
    """The model's argument text as a JSON object, or a ToolError saying what is wrong."""
    text = strip_code_fence(arguments or "")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArguments(f"Invalid arguments for {recipient}: not valid JSON ({e.msg} at "
                        f"position {e.pos}). Send a JSON object.") from None
    if not isinstance(value, dict):
        raise InvalidArguments(f"Invalid arguments for {recipient}: expected a JSON object, "
                        f"got {type(value).__name__}.")
    return value


def strip_code_fence(text: str) -> str:
    """The text inside one surrounding markdown fence (```json ... ```), else the text."""
    text = text.strip()
    if text.startswith("```") and text.endswith("```") and "\n" in text:
        body = text[3:-3]
        return body.split("\n", 1)[1].strip() if "\n" in body else body.strip()
    return text


def format_validation_error(recipient: str, error: Any) -> str:
    """A pydantic ValidationError as one short corrective message for the model."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ())) or "arguments"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return f"Invalid arguments for {recipient}: " + "; ".join(parts) + "."


def run_loop_in_worker(loop) -> None:
    """The target of a thread that runs an asyncio loop for tools. Ctrl-C belongs to the main
    thread: the kernel may deliver SIGINT to any thread that does not block it, and a main
    thread waiting in input() would then never see it. Threads this one starts (the loop's
    asyncio.to_thread workers) inherit the mask."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    loop.run_forever()
