"""The agent loop's handle on its tools (the loop is synchronous, tools are async)."""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Sequence

from agent.tools.base import ToolResult, run_loop_in_worker
from agent.tools.toolbox import Toolbox

log = logging.getLogger(__name__)
CLOSE_SECONDS = 10  # an exit is never held up longer by a tool that will not close


class ToolSet:
    """A Toolbox driven from synchronous code: tools are async and some (the python tool)
    keep state bound to one event loop, so every call runs on this object's own loop thread."""

    def __init__(self, tools: Sequence[Any] = ()):
        self.toolbox = tools if hasattr(tools, "namespace_configs") else Toolbox(tools)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _run(self, coroutine):
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=run_loop_in_worker, args=(self._loop,),
                                            daemon=True, name="agent-tools")
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:       # Ctrl-C in the caller: the call it was waiting for stops too
            future.cancel()
            raise

    def names(self) -> list[str]:
        return [t.namespace if t.namespace != "functions" else t.name for t in self.toolbox]

    def recipients(self) -> list[str]:
        return self.toolbox.recipients()

    def argument_schemas(self) -> dict:
        schemas = getattr(self.toolbox, "argument_schemas", None)
        return schemas() if schemas is not None else dict.fromkeys(self.recipients())

    def system_namespaces(self) -> list:
        return self.toolbox.namespace_configs()

    def function_descriptions(self) -> list:
        return self.toolbox.function_descriptions()

    def author_for(self, recipient: str) -> str:
        return self.toolbox.author_for(recipient)

    def call(self, recipient: str, arguments: str):
        try:
            return self._run(self.toolbox.call(recipient, arguments))
        except Exception as exc:  # the Toolbox already catches tool errors; this is a last guard
            return ToolResult(f"Error: {recipient} failed: {type(exc).__name__}: {exc}", error=True)

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(asyncio.wait_for(self.toolbox.close(), CLOSE_SECONDS))
        except TimeoutError:
            log.warning("the tools did not close within %d s; leaving them", CLOSE_SECONDS)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop = self._thread = None
