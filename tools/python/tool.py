"""The `python` built-in: a stateful, sandboxed notebook for the model's chain of thought."""
from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

from agent.tools.base import Tool, ToolResult, strip_code_fence
from agent.tools.python.sandbox import Limits
from agent.tools.python.session import PythonSession

# gpt-oss was trained on this wording (openai-harmony's ToolNamespaceConfig.python()); the
# timeout, the workspace and the network sentence state this sandbox's real settings.
DESCRIPTION = (
    "Use this tool to execute Python code in your chain of thought. The code will not be shown "
    "to the user. This tool should be used for internal reasoning, but not for code that is "
    "intended to be visible to the user (e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a "
    "stateful Jupyter notebook environment. python will respond with the output of the "
    "execution or time out after {timeout} seconds. The drive at '{drive}' can be used to "
    "save and persist user files. {network}")


class PythonTool(Tool):
    namespace = "python"
    name = "python"

    def __init__(self, *, timeout: float = 30.0, limits: Limits | None = None,
                 workspace: str | Path | None = None, sandbox: str | None = None,
                 bwrap: str | None = None):
        """timeout: wall-clock seconds per call (overrides `limits.timeout`).
        sandbox="none" runs code without bubblewrap (explicit, unsafe opt-in); the default is
        "bwrap", or the GPT_OSS_AGENT_PYTHON_SANDBOX environment variable when set (for command lines
        on machines without bubblewrap)."""
        sandbox = sandbox or os.environ.get("GPT_OSS_AGENT_PYTHON_SANDBOX") or "bwrap"
        limits = replace(limits or Limits(), timeout=timeout)
        self.session = PythonSession(limits, workspace=workspace, sandbox=sandbox, bwrap=bwrap)
        self.timeout = None  # the session enforces its own limit, and restarts the worker

    @property
    def description(self) -> str:
        sandboxed = self.session.sandbox == "bwrap"
        network = ("Internet access for this session is disabled." if sandboxed else
                   "Internet access for this session is UNKNOWN. Depends on the cluster.")
        drive = "/mnt/data" if sandboxed else str(self.session.workspace)
        return DESCRIPTION.format(timeout=f"{self.session.limits.timeout:.1f}", drive=drive,
                                  network=network)

    def namespace_config(self):
        from agent.harmony.messages import ToolNamespaceConfig
        return ToolNamespaceConfig(name="python", description=self.description, tools=[])

    async def call(self, recipient: str, arguments: str) -> ToolResult:
        result = await asyncio.to_thread(self.session.run, strip_code_fence(arguments or ""))
        return ToolResult(result.output, data={"reset": result.reset,
                                               "timed_out": result.timed_out},
                          error=result.reset or result.raised)

    def run(self, code: str) -> str:
        """Runs code synchronously and returns what the model would read."""
        return self.session.run(code).output

    async def close(self) -> None:
        await asyncio.to_thread(self.session.close)
