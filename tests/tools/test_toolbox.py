"""Toolbox: built-ins by name, prompt sections equal to openai-harmony's, safe dispatch."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from agent.tools import Tool, ToolResult, Toolbox, tool
from agent.tools.browser import BrowserTool
from agent.tools.python import PythonTool


@tool
def lookup(key: str) -> str:
    """Looks a key up."""
    return key[::-1]


class Broken(Tool):
    namespace = "functions"
    name = "broken"

    async def call(self, recipient, arguments):
        raise KeyError("internal bug")


def test_builtins_by_name_and_recipients():
    box = Toolbox(["browser", lookup])
    assert isinstance(box.get("browser"), BrowserTool)
    assert box.recipients() == ["browser.search", "browser.open", "browser.find",
                                "functions.lookup"]
    assert box.author_for("browser.open") == "browser.open"
    assert box.author_for("functions.lookup") == "functions.lookup"
    with pytest.raises(ValueError, match="unknown built-in tool 'calculator'"):
        Toolbox(["calculator"])
    with pytest.raises(TypeError, match="cannot use 3 as a tool"):
        Toolbox([3])


def test_argument_schemas_for_every_recipient():
    box = Toolbox(["browser", lookup, Broken()])
    schemas = box.argument_schemas()
    assert list(schemas) == box.recipients()
    assert schemas["functions.lookup"] == {"type": "object", "required": ["key"],
                                           "properties": {"key": {"type": "string"}},
                                           "additionalProperties": False}
    assert schemas["browser.search"]["required"] == ["query"]
    assert schemas["functions.broken"] is None  # a tool without a description: free-form


def test_system_message_equals_openai_harmony(harmony_encoding):
    import openai_harmony as oh

    from agent.harmony.messages import Message, SystemContent
    from agent.harmony.render import render
    box = Toolbox(["browser"])  # the default (DuckDuckGo) backend's source is "web"
    ours = SystemContent.new()
    for config in box.namespace_configs():
        ours = ours.with_tools(config)
    oracle = harmony_encoding.render(oh.Message.from_role_and_content(
        oh.Role.SYSTEM, oh.SystemContent.new().with_browser_tool()))
    assert render(Message.from_role_and_content("system", ours)) == oracle
    assert box.function_descriptions() == []


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")
def test_python_namespace_renders_like_openai_harmony(harmony_encoding):
    import openai_harmony as oh

    from agent.harmony.messages import Message, SystemContent
    from agent.harmony.render import render
    python = PythonTool(timeout=120)
    try:
        config = python.namespace_config()
    finally:
        python.session.close()
    ours = render(Message.from_role_and_content("system", SystemContent.new().with_tools(config)))
    theirs = harmony_encoding.render(oh.Message.from_role_and_content(
        oh.Role.SYSTEM, oh.SystemContent.new().with_tools(oh.ToolNamespaceConfig(
            name="python", description=config.description, tools=[]))))
    assert ours == theirs


def test_tool_bugs_become_messages_not_crashes():
    async def go():
        box = Toolbox([Broken()])
        result = await box.call("functions.broken", "{}")
        assert result.error and result.text == "Error: functions.broken failed: KeyError: 'internal bug'"
        missing = await box.call("browser.search", '{"query": "x"}')
        assert missing.error and "no tool named 'browser.search'" in missing.text
        await box.close()
        await box.close()  # closing twice is fine
    asyncio.run(go())


def test_toolbox_works_across_event_loops():
    box = Toolbox([lookup])
    assert asyncio.run(box.call("functions.lookup", '{"key": "abc"}')) == ToolResult("cba", "cba")
    assert asyncio.run(box.call("functions.lookup", '{"key": "xy"}')).text == "yx"
