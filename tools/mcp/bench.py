"""`python -m agent.tools.mcp.bench`: what MCP costs on top of the tool itself.

Prints, for `python -m agent mcp --tools python` reached through MCPServer over stdio and over
streamable HTTP: the time to start (or reach) the server and list its tools, and the median
round trip of a one-line python cell; then the same cell through the python tool directly.
"""
from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time

from agent.tools.mcp import MCPServer
from agent.tools.toolbox import Toolbox

CALLS = 30
CELL = '{"code": "1 + 1"}'


def measure(label: str, make) -> None:
    started = time.perf_counter()
    box = Toolbox([make()])
    ready = time.perf_counter() - started
    recipient = next(r for r in box.recipients() if r.endswith("python"))
    arguments = CELL if recipient.startswith("functions.") else "1 + 1"

    async def calls() -> list[float]:
        await box.call(recipient, arguments)  # the worker's cold start is not a round trip
        times = []
        for _ in range(CALLS):
            t = time.perf_counter()
            result = await box.call(recipient, arguments)
            times.append(time.perf_counter() - t)
            assert result.text == "2", result.text
        await box.close()
        return times
    times = asyncio.run(calls())
    print(f"{label:<28} ready {ready * 1000:7.0f} ms   call median "
          f"{statistics.median(times) * 1000:6.1f} ms  (min {min(times) * 1000:.1f})")


def main() -> None:
    server = [sys.executable, "-m", "agent", "mcp", "--tools", "python"]
    measure("MCP over stdio", lambda: MCPServer.stdio(*server, prefix="mcp_"))
    process = subprocess.Popen([*server, "--http", "0"], stderr=subprocess.PIPE, text=True)
    try:
        url = process.stderr.readline().split()[-1]
        measure("MCP over streamable HTTP", lambda: MCPServer.http(url, prefix="mcp_"))
    finally:
        process.terminate()
        process.wait(timeout=20)
    from agent.tools.python import PythonTool
    measure("python tool, in process", PythonTool)


if __name__ == "__main__":
    main()
