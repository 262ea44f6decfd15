"""The loop over real Harmony token streams: hand-written completions replayed through the
scripted backend, parsed by the real parser, tools dispatched by the real Toolbox."""
from __future__ import annotations

import asyncio

import pytest

from agent.events import (Done, EffortChosen, ErrorEvent, FinalDelta, ReasoningDelta,
                          ToolCallStarted, ToolResultReceived)
from agent.tools.function import tool

from .conftest import FINAL, THINK, call


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"{city}: 18C, cloudy"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"boom: {reason}")


def test_direct_answer(make_agent, oracle_prompt):
    agent, backend = make_agent([THINK.format("The user greets.") + FINAL.format("Hello!")])
    events = list(agent.stream("Hi"))
    result = events[-1].result
    assert isinstance(events[0], EffortChosen) and events[0].effort == "low"
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "The user greets."
    assert "".join(e.text for e in events if isinstance(e, FinalDelta)) == "Hello!"
    assert result.final == "Hello!" and result.ok and result.steps == 1
    assert result.tool_calls == [] and result.reasoning == "The user greets."
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "assistant"]
    # The prompt the model saw is exactly openai-harmony's rendering of system + user.
    assert backend.prompts[0] == oracle_prompt(result.messages[:2])
    assert result.usage.prompt_tokens == len(backend.prompts[0])
    assert result.usage.generated_tokens > 5


def test_several_function_calls_then_answer(make_agent, oracle_prompt):
    agent, backend = make_agent([
        THINK.format("Need weather.") + call("functions.get_weather", '{"city": "Paris"}'),
        call("functions.add", '{"a": 2, "b": 40}'),
        FINAL.format("Paris is 18C; 2+40=42."),
    ], tools=[get_weather, add])
    events = list(agent.stream("Weather in Paris, and 2+40?"))
    result = events[-1].result
    assert [(c.recipient, c.input, c.output, c.error) for c in result.tool_calls] == [
        ("functions.get_weather", '{"city": "Paris"}', "Paris: 18C, cloudy", False),
        ("functions.add", '{"a": 2, "b": 40}', "42", False)]
    kinds = [type(e).__name__ for e in events if isinstance(e, (ToolCallStarted, ToolResultReceived))]
    assert kinds == ["ToolCallStarted", "ToolResultReceived"] * 2
    assert result.final == "Paris is 18C; 2+40=42." and result.steps == 3
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert [(m["name"], m["recipient"], m["channel"]) for m in tool_messages] == [
        ("functions.get_weather", "assistant", "commentary"), ("functions.add", "assistant", "commentary")]
    # Every step's prompt is openai-harmony's rendering of the conversation so far, function
    # namespace in the developer message included.
    assert result.messages[1]["role"] == "developer"
    n = len(result.messages)
    assert backend.prompts[1] == oracle_prompt(result.messages[:n - 3])
    assert backend.prompts[2] == oracle_prompt(result.messages[:n - 1])
    # The cache saw a growing prefix: later steps reuse the earlier prompt.
    assert result.usage.reused_tokens >= len(backend.prompts[0]) + len(backend.prompts[1])


def test_unknown_tool_goes_back_to_the_model(make_agent):
    agent, backend = make_agent([call("functions.nope", "{}"), FINAL.format("Sorry.")], tools=[add])
    result = agent.run("Use nope")
    assert result.final == "Sorry." and result.ok
    (only,) = result.tool_calls
    assert only.error and "nope" in only.output and "functions.add" in only.output
    tool_message = [m for m in result.messages if m["role"] == "tool"][0]
    assert tool_message["name"] == "functions.nope"
    assert tool_message["content"][0]["text"] == only.output


def test_invalid_json_arguments(make_agent):
    agent, _ = make_agent([call("functions.add", '{"a": 2, b: 3}'), call("functions.add", '{"a": 2, "b": 3}'),
                           FINAL.format("5")], tools=[add])
    result = agent.run("2+3")
    first, second = result.tool_calls
    assert first.error and "JSON" in first.output
    assert not second.error and second.output == "5"
    assert result.final == "5" and result.ok


def test_tool_that_raises(make_agent):
    agent, _ = make_agent([call("functions.explode", '{"reason": "test"}'), FINAL.format("It failed.")],
                          tools=[explode])
    events = list(agent.stream("Explode"))
    result = events[-1].result
    (failed,) = result.tool_calls
    assert failed.error and "ValueError" in failed.output and "boom: test" in failed.output
    assert [e.error for e in events if isinstance(e, ToolResultReceived)] == [True]
    assert result.final == "It failed."


@pytest.mark.parametrize("malformed", [
    "<|end|><|end|>",                                          # no message at all
    "<|channel|>analysis<|message|>I was cut off in the midd",  # truncated (no stop token)
])
def test_malformed_completion_is_reported_to_the_model(make_agent, malformed):
    agent, backend = make_agent([malformed, FINAL.format("Recovered.")])
    events = list(agent.stream("Say something"))
    result = events[-1].result
    assert result.final == "Recovered." and result.steps == 2 and result.ok
    assert any(isinstance(e, ErrorEvent) for e in events)
    note = [m for m in result.messages if m["role"] == "tool"]
    assert len(note) == 1 and note[0]["name"] == "parser"
    assert "could not be used" in note[0]["content"][0]["text"]
    assert result.errors
    # The second prompt carries that note to the model.
    from agent.harmony.tokenizer import get_encoding
    assert "could not be used" in get_encoding().decode(backend.prompts[1])


def test_max_steps_gives_a_partial_result(make_agent):
    agent, backend = make_agent([call("functions.add", '{"a": 1, "b": 1}')] * 5, tools=[add], max_steps=3)
    result = agent.run("Loop forever")
    assert result.stop_reason == "max_steps" and not result.ok
    assert "max_steps=3" in result.reason
    assert len(backend.prompts) == 3 and len(result.tool_calls) == 3
    assert result.final == ""


def test_token_budget_and_backend_failure(make_agent):
    agent, _ = make_agent([THINK.format("x " * 50) + FINAL.format("late")], max_tokens=20, max_step_tokens=20)
    result = agent.run("Think long")
    assert result.stop_reason == "max_tokens" and "max_tokens=20" in result.reason
    assert result.usage.generated_tokens == 20

    agent, _ = make_agent([])      # the script is empty: the backend raises
    result = agent.run("Anything")
    assert result.stop_reason == "error" and "no completion left" in result.reason


def test_max_time(make_agent):
    agent, _ = make_agent([THINK.format("slow")] * 3, max_time=0.0)
    result = agent.run("Hurry")
    assert result.stop_reason == "timeout" and "max_time" in result.reason


def test_async_variants(make_agent):
    agent, _ = make_agent([FINAL.format("one"), FINAL.format("two")])

    async def main():
        result = await agent.arun("first")
        events = [e async for e in agent.astream("second")]
        return result, events

    result, events = asyncio.run(main())
    assert result.final == "one"
    assert isinstance(events[-1], Done) and events[-1].result.final == "two"


def test_python_call_then_answer(make_agent, oracle_prompt):
    from agent.tools.python import PythonTool
    agent, backend = make_agent([
        THINK.format("Compute it.") + call("python", "x = 6 * 7\nprint(x)", channel="analysis", content_type="code"),
        FINAL.format("6 times 7 is 42."),
    ], tools=[PythonTool(timeout=20)])
    result = agent.run("What is 6*7? Use python.")
    (run,) = result.tool_calls
    assert run.recipient == "python" and not run.error and run.output.strip() == "42"
    tool_message = [m for m in result.messages if m["role"] == "tool"][0]
    assert (tool_message["name"], tool_message["channel"]) == ("python", "analysis")
    assert result.final == "6 times 7 is 42."
    # The python namespace is in the system message, and the second prompt (with the call
    # and its output) is what openai-harmony renders.
    assert "python" in result.messages[0]["content"][0]["tools"]
    assert backend.prompts[1] == oracle_prompt(result.messages[:-1])


def test_browser_search_open_and_citations(make_agent, tmp_path):
    from agent.tools.browser import BrowserTool
    from agent.tools.browser.backends import LocalFolderBackend
    (tmp_path / "otters.txt").write_text("Sea otters\n\nSea otters hold hands while sleeping.\n"
                                         "They use rocks as tools.\n")
    browser = BrowserTool(LocalFolderBackend(tmp_path))
    agent, backend = make_agent([
        call("browser.search", '{"query": "sea otters sleeping"}'),
        call("browser.open", '{"id": 0, "cursor": 0}'),
        FINAL.format("Sea otters hold hands while they sleep【1†L3】."),
    ], tools=[browser])
    result = agent.run("Why do sea otters hold hands?")
    assert [c.recipient for c in result.tool_calls] == ["browser.search", "browser.open"]
    assert not any(c.error for c in result.tool_calls)
    assert "hold hands" in result.tool_calls[1].output
    (citation,) = result.citations
    assert (citation.cursor, citation.start_line) == (1, 3)
    assert citation.url and citation.url.endswith("otters.txt")


def test_two_calls_in_one_completion_run_in_order(make_agent, oracle_prompt):
    first = call("functions.add", '{"a": 1, "b": 2}').replace("<|call|>", "<|end|><|start|>assistant")
    agent, backend = make_agent([first + call("functions.get_weather", '{"city": "Oslo"}'),
                                 FINAL.format("3, and Oslo: 18C.")], tools=[add, get_weather])
    result = agent.run("1+2 and weather in Oslo")
    assert [(c.recipient, c.output, c.step) for c in result.tool_calls] == [
        ("functions.add", "3", 1), ("functions.get_weather", "Oslo: 18C, cloudy", 1)]
    roles = [(m["role"], m["name"] if m["role"] == "tool" else m.get("recipient")) for m in result.messages[3:]]
    assert roles == [("assistant", "functions.add"), ("assistant", "functions.get_weather"),
                     ("tool", "functions.add"), ("tool", "functions.get_weather"), ("assistant", None)]
    assert backend.prompts[1] == oracle_prompt(result.messages[:-1])
