"""MCP servers as tools of /v1/responses: `python -m agent serve --mcp LABEL=COMMAND` on the
embedded model, a server written with the reference `mcp` package, requests from the official
`openai` client and the OpenAI Agents SDK (HostedMCPTool). What is asserted holds whatever the
model's quality: the grammar allows only the offered tools, and every call really runs on the
MCP server (its answers are computed here from the call's own arguments)."""
from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import openai
import pytest

SERVER = textwrap.dedent('''
    from mcp.server.mcpserver import MCPServer

    app = MCPServer("calc")

    @app.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return f"sum={a + b}"

    @app.tool()
    def shout(text: str) -> str:
        """Say the text in capitals."""
        return "shouted:" + text.upper()

    if __name__ == "__main__":
        app.run()
''')
MODEL = "gpt-oss-nano"
CALC = {"type": "mcp", "server_label": "calc", "require_approval": "never"}


def expected_output(name: str, arguments: dict) -> str:
    return f"sum={arguments['a'] + arguments['b']}" if name == "add" else \
        "shouted:" + arguments["text"].upper()


@pytest.fixture(scope="module")
def base_url(serve_cli, tmp_path_factory):
    script = tmp_path_factory.mktemp("mcp") / "calc_server.py"
    script.write_text(SERVER)
    with serve_cli("--served-model-name", MODEL, "--mcp", f"calc={sys.executable} {script}") as url:
        yield url


def check_mcp_items(output, allowed: set[str]) -> list:
    listed = [item for item in output if item.type == "mcp_list_tools"]
    assert len(listed) == 1 and listed[0].server_label == "calc"
    assert {tool.name for tool in listed[0].tools} == allowed
    calls = [item for item in output if item.type == "mcp_call"]
    for item in calls:
        assert item.server_label == "calc" and item.name in allowed
        assert item.error is None and item.output == expected_output(item.name,
                                                                     json.loads(item.arguments))
    return calls


@pytest.mark.parametrize("ask", ["add 2 and 3", "shout hello", "what can you do?"])
def test_a_required_call_runs_on_the_mcp_server(client, ask):
    response = client.responses.create(model=MODEL, input=ask, tools=[CALC],
                                       tool_choice="required", max_output_tokens=300)
    assert check_mcp_items(response.output, {"add", "shout"})  # at least one call, all real


def test_allowed_tools_narrow_what_is_offered(client):
    response = client.responses.create(model=MODEL, input="shout hello", tool_choice="required",
                                       tools=[{**CALC, "allowed_tools": ["add"]}],
                                       max_output_tokens=300)
    calls = check_mcp_items(response.output, {"add"})
    assert calls and {c.name for c in calls} == {"add"}


def test_streamed_mcp_call_events(client):
    """Each finished call streams its events, and the stream ends with the response: completed,
    or incomplete at the token budget (the embedded model may think past it, and a call cut
    short stays unfinished); every finished call ran on the server."""
    with client.responses.stream(model=MODEL, input="add 40 and 2", tools=[CALC],
                                 tool_choice="required", reasoning={"effort": "low"},
                                 max_output_tokens=300) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    response = events[-1].response
    assert response.status == kinds[-1].removeprefix("response.")
    finished = [item for item in response.output
                if item.type != "mcp_call" or item.status == "completed"]
    calls = check_mcp_items(finished, {"add", "shout"})
    assert kinds.count("response.mcp_call.completed") == len(calls)
    assert calls or response.status == "incomplete"  # tool_choice="required"


@pytest.mark.parametrize("tool, param", [
    ({**CALC, "server_label": "nowhere"}, "tools.0.server_label"),
    ({**CALC, "server_url": "http://169.254.169.254/mcp"}, "tools.0.server_url"),
    ({**CALC, "require_approval": "always"}, "tools.0.require_approval"),
    ({**CALC, "allowed_tools": ["rm"]}, "tools.0.allowed_tools"),
])
def test_requests_cannot_reach_other_servers_or_tools(client, tool, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", tools=[tool])
    assert caught.value.body["param"] == param


def test_the_agents_sdk_hosted_mcp_tool(base_url):
    agents = pytest.importorskip("agents")
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    agent = agents.Agent(
        name="calc", instructions="Use the calc tools.",
        model=agents.OpenAIResponsesModel(model=MODEL, openai_client=client),
        model_settings=agents.ModelSettings(tool_choice="required", max_tokens=300),
        tools=[agents.HostedMCPTool(tool_config=CALC)])

    async def go():
        try:
            return await agents.Runner.run(agent, "add 2 and 3", max_turns=2)
        finally:
            await client.close()
    result = asyncio.run(go())
    raw = [item.raw_item for item in result.new_items]
    calls = [r for r in raw if getattr(r, "type", None) == "mcp_call"]
    assert calls and all(c.output == expected_output(c.name, json.loads(c.arguments))
                         for c in calls)


def test_an_mcp_server_that_cannot_start_is_one_line_and_exit_3():
    import subprocess
    run = subprocess.run([sys.executable, "-m", "agent", "serve", "--port", "0",
                          "--mcp", "calc=/no/such/mcp-server --flag"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot start an MCP server")
    assert "/no/such/mcp-server" in lines[0]
