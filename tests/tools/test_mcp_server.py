"""`python -m agent mcp` driven by the official mcp client: the tools listed, python keeping
its state across calls (per session over HTTP), the browser's cursors, bad arguments
answered with a message naming the tool and the field."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys

import pytest

SANDBOX = [] if shutil.which("bwrap") else ["--unsandboxed"]  # the sandbox has its own tests


def text(result) -> str:
    return "\n".join(block.text for block in result.content)


def test_stdio_server_lists_tools_keeps_state_and_explains_bad_calls(docs, web):
    from mcp import Client, StdioServerParameters
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "agent", "mcp", "--allow-private", "--search-folder", str(docs), *SANDBOX])

    async def scenario():
        async with Client(params) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert list(tools) == ["python", "browser_search", "browser_open", "browser_find"]
            assert tools["python"].input_schema["required"] == ["code"]
            assert "stateful" in tools["python"].description
            assert tools["browser_find"].input_schema["required"] == ["pattern"]

            first = await client.call_tool("python", {"code": "x = 41\nprint('set')"})
            assert (text(first), first.is_error) == ("set", False)
            second = await client.call_tool("python", {"code": "x + 1"})
            assert (text(second), second.is_error) == ("42", False)
            crash = await client.call_tool("python", {"code": "1 / 0"})
            assert "ZeroDivisionError" in text(crash) and crash.is_error
            after = await client.call_tool("python", {"code": "x"})   # the state survives it
            assert (text(after), after.is_error) == ("41", False)
            bye = await client.call_tool("python", {"code": "raise SystemExit(0)"})
            assert not bye.is_error                                   # a clean exit is no failure

            bad = await client.call_tool("python", {"source": "x"})
            assert bad.is_error and text(bad).startswith("Invalid arguments for python: ")
            assert "'code' is a required property" in text(bad) and "'source' was unexpected" in text(bad)
            bad = await client.call_tool("browser_search", {"query": 5})
            assert bad.is_error
            assert text(bad) == "Invalid arguments for browser_search: query: 5 is not of type 'string'."
            unknown = await client.call_tool("shell", {"cmd": "ls"})
            assert unknown.is_error and "no tool named 'shell'" in text(unknown)
            assert "python, browser_search, browser_open, browser_find" in text(unknown)

            found = await client.call_tool("browser_search", {"query": "Fredville"})
            assert text(found).startswith("[0] Fredville\n")
            page = await client.call_tool("browser_open", {"id": f"{web.base}/table.html"})
            assert text(page).startswith(f"[1] Planets ({web.base}/table.html)\n")
            match = await client.call_tool("browser_find", {"pattern": "jupiter"})
            assert "【0†match at L6】" in text(match)  # the pages of earlier calls are kept

    asyncio.run(asyncio.wait_for(scenario(), 120))


@pytest.fixture(scope="module")
def http_server():
    process = subprocess.Popen([sys.executable, "-m", "agent", "mcp", "--http", "0",
                                "--tools", "python", *SANDBOX],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = process.stderr.readline()
    assert line.startswith("serving MCP on http://127.0.0.1:"), line
    yield process, line.split()[-1]
    process.terminate()
    process.wait(timeout=20)


def test_http_server_keeps_python_state_per_session(http_server):
    from mcp import Client
    process, url = http_server

    async def run(client, code):
        result = await client.call_tool("python", {"code": code})
        assert not result.is_error, text(result)
        return text(result)

    async def scenario():
        # Clients of the session protocol (up to 2025-11-25) each get their own notebook.
        async with Client(url, mode="legacy") as a, Client(url, mode="legacy") as b:
            assert [t.name for t in (await a.list_tools()).tools] == ["python"]
            await run(a, "name = 'a'")
            await run(b, "name = 'b'")
            assert await run(a, "name") == "'a'" and await run(b, "name") == "'b'"
        async with Client(url) as modern:  # the sessionless 2026-07-28 protocol works too
            assert await run(modern, "6 * 7") == "42"
            bad = await modern.call_tool("python", {"code": 7})
            assert bad.is_error and "code: 7 is not of type 'string'" in text(bad)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_taken_port_is_one_clear_line(http_server):
    _, url = http_server
    port = url.rsplit(":", 1)[1].split("/")[0]
    done = subprocess.run([sys.executable, "-m", "agent", "mcp", "--http", port, *SANDBOX],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
