"""`python -m agent`: dispatches the subcommands to the module that owns each one.

    python -m agent "task" [flags]      run the agent (agent.run)
    python -m agent                     interactive chat (agent.repl)
    python -m agent harmony render|parse FILE   Harmony interop (agent.harmony.cli)
    python -m agent tool NAME ARGS      run one tool as the model would see it (agent.tools.cli)
    python -m agent mcp [--http PORT]   the python and browser tools as an MCP server (agent.tools.mcp.server)
    python -m agent serve [...]         OpenAI-compatible server (agent.server.cli)
    python -m agent download NAME       fetch real gpt-oss weights (agent.model.download)
"""
from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "harmony": "agent.harmony.cli",
    "tool": "agent.tools.cli",
    "mcp": "agent.tools.mcp.server",
    "serve": "agent.server.cli",
    "download": "agent.model.download",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    module = SUBCOMMANDS.get(argv[0]) if argv else None
    if module is None:
        module, rest = "agent.run", argv
    else:
        rest = argv[1:]
    return importlib.import_module(module).main(rest) or 0
