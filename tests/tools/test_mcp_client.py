"""MCP servers as tools: a FastMCP-style server (the reference `mcp` package's MCPServer),
over stdio and over streamable HTTP on 127.0.0.1, called by an Agent on recorded completions,
by `python -m agent tool --mcp` and by `python -m agent --mcp`. The official mcp client lists
the same server independently: the oracle for what the model is shown."""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.loop import Agent
from agent.tools import Toolbox, tool
from agent.tools.mcp import MCPConnectError, MCPServer
from agent.tools.mcp.client import render_result

SERVER = textwrap.dedent('''
    import os, sys
    from typing import Literal
    from pydantic import BaseModel
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.utilities.types import Image

    app = MCPServer("fixture")

    class Weather(BaseModel):
        city: str
        temperature: int
        unit: str

    @app.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @app.tool()
    def weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> Weather:
        """Current weather in a city."""
        return Weather(city=city, temperature=18, unit=unit)

    @app.tool()
    def refuse(reason: str) -> str:
        """Always refuses."""
        raise ToolError(f"refused: {reason}")

    @app.tool()
    def header(name: str, ctx: Context) -> str:
        """A header of the HTTP request that carried this call."""
        return dict(ctx.headers or {}).get(name.lower(), "absent")

    @app.tool(name="echo-text")
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @app.tool()
    async def nap(seconds: float) -> str:
        """Sleep a while."""
        import anyio
        await anyio.sleep(seconds)
        return "awake"

    @app.tool()
    def picture() -> Image:
        """A tiny picture."""
        return Image(data=b"\\x89PNG\\r\\n\\x1a\\n" + b"\\0" * 92, format="png")

    if __name__ == "__main__":
        if "--pidfile" in sys.argv:
            with open(sys.argv[sys.argv.index("--pidfile") + 1], "w") as f:
                f.write(str(os.getpid()))
        if "--http" in sys.argv:
            app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[sys.argv.index("--http") + 1]))
        else:
            app.run()
''')


def call(recipient: str, arguments: str) -> str:
    return f"<|channel|>commentary to={recipient} <|constrain|>json<|message|>{arguments}<|call|>"


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("mcp") / "fixture_server.py"
    path.write_text(SERVER)
    return path


@pytest.fixture(scope="module")
def quiet():
    with open(os.devnull, "w") as sink:  # the server's own log lines
        yield sink


@pytest.fixture(scope="module")
def http_url(script, quiet):
    """The fixture server over streamable HTTP on 127.0.0.1 (one process for the module)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(script), "--http", str(port)],
                               stdout=quiet, stderr=quiet)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("the fixture MCP server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(timeout=10)


def listed_by_the_official_client(url: str) -> list:
    from mcp import Client

    async def go():
        async with Client(url) as client:
            return (await client.list_tools()).tools
    return asyncio.run(go())


def test_agent_calls_a_stdio_server_and_stops_it_on_close(script, quiet, tmp_path):
    pidfile = tmp_path / "pid"
    server = MCPServer.stdio(sys.executable, str(script), "--pidfile", str(pidfile), errlog=quiet)
    backend = ScriptedBackend([
        call("functions.add", '{"a": 2, "b": 40}'),
        call("functions.weather", '{"city": "Paris"}'),
        call("functions.refuse", '{"reason": "not today"}'),
        call("functions.echo_text", '{"text": "hi"}'),
        call("functions.picture", "{}"),
        call("functions.add", '{"a": "two"}'),
        final("Done."),
    ])
    agent = Agent(backend, tools=[server], effort="low", date=None)
    pid = int(pidfile.read_text())
    assert agent.toolset.recipients() == ["functions.add", "functions.weather", "functions.refuse",
                                          "functions.header", "functions.echo_text",
                                          "functions.nap", "functions.picture"]
    result = agent.run("Use every tool")
    assert result.final == "Done." and result.ok
    add, weather, refuse, echo, picture, bad = result.tool_calls
    assert (add.output, add.error) == ("42", False)
    assert json.loads(weather.output) == {"city": "Paris", "temperature": 18, "unit": "celsius"}
    assert (refuse.output, refuse.error) == ("Error executing tool refuse: refused: not today", True)
    assert (echo.output, echo.error) == ("hi", False)  # `echo-text` on the server
    assert picture.output == "[image (image/png, 100 bytes): not shown]" and not picture.error
    assert bad.error and bad.output.startswith("Invalid arguments for functions.add: ")
    assert "a: 'two' is not of type 'integer'" in bad.output
    assert "'b' is a required property" in bad.output
    # The tool messages go back to the model under the names it called.
    names = [m["name"] for m in result.messages if m["role"] == "tool"]
    assert names == ["functions.add", "functions.weather", "functions.refuse",
                     "functions.echo_text", "functions.picture", "functions.add"]
    agent.close()  # the server's lifetime is the agent's
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the MCP server outlived the agent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def untitled(node):
    """A schema without its "title" keys (a property called title stays)."""
    if isinstance(node, list):
        return [untitled(v) for v in node]
    if not isinstance(node, dict):
        return node
    return {k: {n: untitled(p) for n, p in v.items()} if k == "properties" else untitled(v)
            for k, v in node.items() if k != "title"}


def test_agent_over_streamable_http_shows_the_servers_schemas(http_url, harmony_encoding):
    from openai_harmony import DeveloperContent, Message, Role, ToolDescription
    backend = ScriptedBackend([call("functions.weather", '{"city": "Oslo", "unit": "fahrenheit"}'),
                               final("18F in Oslo.")])
    with Agent(backend, tools=[MCPServer.http(http_url)], effort="low", date=None) as agent:
        result = agent.run("Weather in Oslo?")
    assert result.final == "18F in Oslo."
    assert json.loads(result.tool_calls[0].output)["unit"] == "fahrenheit"
    # What the model was shown is openai-harmony's rendering of the tools as the official
    # client lists them: names made identifiers, no parameters shown as `() => any`, and
    # pydantic's titles ("A", "City"; openai-harmony prints them as comments) left out, as @tool does.
    listed = listed_by_the_official_client(http_url)
    oracle = harmony_encoding.decode_utf8(harmony_encoding.render(Message.from_role_and_content(
        Role.DEVELOPER, DeveloperContent.new().with_function_tools(
            [ToolDescription.new(t.name.replace("-", "_"), t.description,
                                 untitled(t.input_schema) if t.input_schema.get("properties") else None)
             for t in listed]))))
    prompt = harmony_encoding.decode_utf8(backend.prompts[0])
    assert oracle in prompt
    assert 'type weather = (_: {\ncity: string,\nunit?: "celsius" | "fahrenheit", // default: celsius' \
        in oracle


def test_name_collisions_are_reported_and_a_prefix_resolves_them(http_url):
    @tool
    def add(a: int, b: int) -> int:
        """Local add."""
        return a + b

    with pytest.raises(ValueError) as caught:
        Toolbox([add, MCPServer.http(http_url)])
    message = str(caught.value)
    assert "two tools answer to 'functions.add'" in message
    assert f"MCP tool functions.add from '{http_url}'" in message and "prefix=" in message
    box = Toolbox([add, MCPServer.http(http_url, prefix="fx_")])
    try:
        assert "functions.add" in box.recipients() and "functions.fx_add" in box.recipients()
        assert asyncio.run(box.call("functions.fx_add", '{"a": 1, "b": 2}')).text == "3"
    finally:
        asyncio.run(box.close())


def test_a_slow_call_times_out_and_the_session_goes_on(http_url):
    box = Toolbox([MCPServer.http(http_url, timeout=0.5)])
    try:
        started = time.monotonic()
        slow = asyncio.run(box.call("functions.nap", '{"seconds": 20}'))
        assert slow.error and slow.text == ("Error: functions.nap did not finish within 0.5 "
                                            "seconds and was cancelled.")
        assert time.monotonic() - started < 5
        assert asyncio.run(box.call("functions.add", '{"a": 1, "b": 1}')).text == "2"
    finally:
        asyncio.run(box.close())


def test_python_m_agent_tool_through_mcp(script, http_url, capsys):
    command = shlex.join([sys.executable, str(script)])
    done = subprocess.run([sys.executable, "-m", "agent", "tool", "functions.add", '{"a": 1, "b": 2}',
                           "--mcp", command], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "3\n"), done.stderr
    from agent.tools.cli import main
    assert main(["functions.echo_text", '{"text": "hello"}', "--mcp", http_url]) == 0
    assert capsys.readouterr().out == "hello\n"
    assert main(["functions.refuse", '{"reason": "x"}', "--mcp", http_url]) == 0  # a tool error
    assert capsys.readouterr().out == "Error executing tool refuse: refused: x\n"
    assert main(["functions.add", '{"a": 1}', "--mcp", http_url]) == 2
    assert "Invalid arguments for functions.add: arguments: 'b' is a required property" \
        in capsys.readouterr().err
    assert main(["functions.nope", "{}", "--mcp", http_url]) == 2
    assert "functions.echo_text" in capsys.readouterr().err  # the known tools are listed


def test_python_m_agent_with_mcp_on_recorded_completions(http_url, tmp_path, capsys):
    from agent.run import main
    recorded = tmp_path / "recorded.json"
    recorded.write_text(json.dumps({"completions": [call("functions.add", '{"a": 20, "b": 22}'),
                                                    final("20 + 22 = 42")]}))
    code = main(["--model", str(recorded), "--tools", "", "--mcp", http_url, "--effort", "low",
                 "--json", "What is 20 + 22?"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["final"] == "20 + 22 = 42"
    assert [(c["recipient"], c["output"]) for c in out["tool_calls"]] == [("functions.add", "42")]
    assert main(["--model", str(recorded), "--mcp", "/no/such/mcp-server", "task"]) == 2
    err = capsys.readouterr().err
    assert "MCP server '/no/such/mcp-server': cannot connect" in err


def test_a_server_that_cannot_start_is_one_clear_error():
    started = time.monotonic()
    with pytest.raises(MCPConnectError, match=r"MCP server '/no/such/mcp-server --flag': "
                                              r"cannot connect: .*No such file"):
        MCPServer.from_spec("/no/such/mcp-server --flag").tools()
    assert time.monotonic() - started < 10
    with pytest.raises(MCPConnectError, match="No closing quotation"):
        MCPServer.from_spec('python "unclosed')


def test_results_render_text_structured_content_resources_and_errors():
    import mcp.types as types
    structured = types.CallToolResult(content=[], structured_content={"rows": [1, 2]})
    assert (render_result(structured).text, render_result(structured).data) == \
        ('{"rows": [1, 2]}', {"rows": [1, 2]})
    mixed = types.CallToolResult(content=[
        types.TextContent(type="text", text="first"),
        types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
            uri="file:///notes.txt", text="the notes")),
        types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
            uri="file:///a.bin", blob="AAAA", mime_type="application/octet-stream")),
        types.ResourceLink(type="resource_link", name="report", uri="file:///report.pdf"),
        types.AudioContent(type="audio", data="AAAAAAAA", mime_type="audio/wav"),
    ])
    assert render_result(mixed).text == (
        "first\nthe notes\n[resource file:///a.bin (application/octet-stream): not shown]\n"
        "[resource link: report file:///report.pdf]\n[audio (audio/wav, 6 bytes): not shown]")
    failed = types.CallToolResult(content=[types.TextContent(type="text", text="disk full")],
                                  is_error=True)
    assert (render_result(failed).text, render_result(failed).error) == ("Error: disk full", True)


def test_headers_reach_an_http_server_from_the_api_and_the_command_line(http_url, capsys):
    from agent.tools.cli import main
    answers = []
    for headers in ({"Authorization": "Bearer s3cret"}, None):
        box = Toolbox([MCPServer.http(http_url, headers=headers)])
        try:
            answers.append(asyncio.run(box.call("functions.header", '{"name": "Authorization"}')).text)
        finally:
            asyncio.run(box.close())
    assert answers == ["Bearer s3cret", "absent"]
    assert main(["functions.header", '{"name": "x-team"}', "--mcp", http_url,
                 "--mcp-header", "X-Team: blue"]) == 0
    assert capsys.readouterr().out.strip() == "blue"
