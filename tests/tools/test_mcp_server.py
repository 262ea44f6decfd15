"""`python -m agent mcp` driven by the official mcp client: the tools listed, python keeping
its state across calls (per session over HTTP), the browser's cursors, bad arguments
answered with a message naming the tool and the field."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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


# -- sessions over HTTP: state is reached only through a session the SDK itself set up ------

MODERN = "2026-07-28"   # the sessionless protocol: the SDK never looks a session id up for it
LEGACY = "2025-11-25"   # the handshake protocol: the SDK's session manager checks the id


@contextlib.asynccontextmanager
async def legacy_session(url, terminate=True):
    """A real MCP session (the official client, handshake protocol), its id and the statuses
    of the DELETEs it sent (leaving the context sends one if `terminate`)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    seen = {"id": None, "deletes": []}

    async def note(response):
        seen["id"] = seen["id"] or response.headers.get("mcp-session-id")
        if response.request.method == "DELETE":
            seen["deletes"].append(response.status_code)
    async with httpx2.AsyncClient(event_hooks={"response": [note]},
                                  timeout=httpx2.Timeout(30, read=300)) as http:
        transport = streamable_http_client(url, http_client=http, terminate_on_close=terminate)
        async with Client(transport, mode="legacy") as client:
            yield client, seen["id"], seen


async def raw_call(http, url, code, session_id=None, version=MODERN):
    """tools/call python, written by hand as any HTTP client can send it."""
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": version,
               "Mcp-Method": "tools/call", "Mcp-Name": "python"}
    if session_id is not None:
        headers["Mcp-Session-Id"] = session_id
    params = {"name": "python", "arguments": {"code": code}}
    if version == MODERN:
        params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                           "io.modelcontextprotocol/clientCapabilities": {}}
    return await http.post(url, headers=headers, json={"jsonrpc": "2.0", "id": 1,
                                                       "method": "tools/call", "params": params})


async def python(client, code):
    result = await client.call_tool("python", {"code": code})
    return text(result), result.is_error


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (the server: its sandboxes and their workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_another_sessions_id_reads_nothing_of_it(http_server):
    import httpx
    _, url = http_server

    async def scenario():
        async with legacy_session(url) as (a, a_id, _), legacy_session(url) as (b, b_id, _):
            assert a_id and b_id and a_id != b_id
            assert await python(a, "secret = 'a-' + 'secret'") == ("(no output)", False)
            said, error = await python(b, "secret")
            assert error and "NameError" in said
            async with httpx.AsyncClient(timeout=60) as http:
                # B's client sends A's id on the sessionless path (was: A's variables answered)
                stolen = await raw_call(http, url, "secret", session_id=a_id)
                assert stolen.status_code == 404 and "a-secret" not in stolen.text
                plain = await raw_call(http, url, "secret")  # sessionless: a state of its own
                assert plain.status_code == 200 and "a-secret" not in plain.text
            assert await python(a, "secret") == ("'a-secret'", False)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_made_up_session_ids_are_refused_and_evict_nothing(http_server):
    import httpx
    from agent.tools.mcp.server import MAX_SESSIONS
    _, url = http_server

    async def scenario():
        async with legacy_session(url) as (a, _, _):
            assert await python(a, "kept = 1") == ("(no output)", False)
            async with httpx.AsyncClient(timeout=60) as http:
                # more made-up ids than states are kept (was: each made a state, A's evicted)
                statuses = [(await raw_call(http, url, "1", f"made-up-{n}", version)).status_code
                            for n in range(MAX_SESSIONS + 1) for version in (MODERN, LEGACY)]
            assert statuses == [404] * len(statuses)
            assert await python(a, "kept") == ("1", False)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_deleted_session_ends_its_sandbox_and_state(http_server):
    import httpx
    process, url = http_server
    marker = f"marker-{uuid.uuid4().hex}"

    def workspaces():  # the session's /mnt/data on the host
        return list(Path(tempfile.gettempdir()).glob(f"agent-python-*/data/{marker}"))

    async def scenario():
        before = descendants(process.pid)
        async with legacy_session(url) as (a, a_id, seen):
            code = f"open({marker!r}, 'w').write('x')\nsecret = 'a-secret'"
            assert await python(a, code) == ("(no output)", False)
            sandbox = descendants(process.pid) - before   # bwrap, its init, the worker
            assert sandbox and workspaces()
        assert seen["deletes"] == [200]                   # the client's DELETE was taken
        deadline = time.monotonic() + 20
        while (sandbox & descendants(process.pid) or workspaces()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not sandbox & descendants(process.pid), "the session's sandbox still runs"
        assert not workspaces(), "the session's /mnt/data is still there"
        async with httpx.AsyncClient(timeout=60) as http:
            for version in (LEGACY, MODERN):
                gone = await raw_call(http, url, "secret", a_id, version)
                assert gone.status_code == 404 and "a-secret" not in gone.text

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_an_idle_session_expires_with_its_sandbox():
    """Served in this process with a 1 s idle timeout (the default is IDLE_SECONDS); the
    client leaves without a DELETE, so only the timeout ends the session."""
    import httpx
    from agent.tools.mcp.server import build_server, serve_http
    from agent.tools.python import PythonTool
    from agent.tools.toolbox import Toolbox
    sandbox = "bwrap" if not SANDBOX else "none"
    server, sessions = build_server(lambda: Toolbox([PythonTool(sandbox=sandbox)]))
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"

    async def scenario():
        serving = asyncio.create_task(serve_http(server, sessions, sock, idle_timeout=1))
        try:
            before = descendants(os.getpid())
            async with legacy_session(url, terminate=False) as (a, a_id, seen):
                assert await python(a, "secret = 'a-secret'") == ("(no output)", False)
                workers = descendants(os.getpid()) - before
                assert workers
            assert seen["deletes"] == []
            deadline = time.monotonic() + 20
            while workers & descendants(os.getpid()) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not workers & descendants(os.getpid()), "the idle session's sandbox still runs"
            async with httpx.AsyncClient(timeout=60) as http:
                gone = await raw_call(http, url, "secret", a_id, LEGACY)
                assert gone.status_code == 404 and "a-secret" not in gone.text
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            sock.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
