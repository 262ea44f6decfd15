"""`python -m agent serve` on the embedded model, driven by the official `openai` client and
the OpenAI Agents SDK. What is asserted holds whatever the model's quality: the turn grammar
guarantees it (only declared tools, arguments by their schemas, tool_choice and
response_format obeyed, no Harmony marker text in any content)."""
from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import openai
import pytest

MARKER = re.compile(r"<\|[a-z0-9_]*\|>")
MODEL = "gpt-oss-nano"


@pytest.fixture(scope="module")
def base_url(serve_cli):
    with serve_cli("--served-model-name", MODEL) as url:
        yield url


def function(name, description, properties, required=None, strict=None):
    schema = {"type": "object", "properties": properties,
              "required": list(properties) if required is None else required,
              "additionalProperties": False}
    tool = {"type": "function",
            "function": {"name": name, "description": description, "parameters": schema}}
    if strict is not None:
        tool["function"]["strict"] = strict
    return tool


WEATHER = function("get_weather", "Current weather for a city.",
                   {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                   required=["city"])
STOCK = function("get_stock_quote", "Latest price of a stock.",
                 {"symbol": {"type": "string", "maxLength": 8}}, strict=True)
FLIGHT = function("lookup_flight", "Status of a flight.",
                  {"flight": {"type": "string"}, "date": {"type": "string"},
                   "passengers": {"type": "array", "maxItems": 3,
                                  "items": {"type": "object", "additionalProperties": False,
                                            "properties": {"name": {"type": "string"},
                                                           "seat": {"type": "string"}},
                                            "required": ["name"]}}},
                  required=["flight"], strict=True)
CURRENCY = function("convert_currency", "Convert an amount between currencies.",
                    {"amount": {"type": "number"},
                     "source": {"enum": ["USD", "EUR", "JPY", "GBP"]},
                     "target": {"enum": ["USD", "EUR", "JPY", "GBP"]}}, strict=True)
TOOLSETS = [[WEATHER], [STOCK], [FLIGHT], [CURRENCY], [WEATHER, STOCK], [FLIGHT, CURRENCY],
            [WEATHER, STOCK, FLIGHT, CURRENCY]]
ASKS = ["What's the weather in Paris?", "price of AAPL right now", "is flight BA117 on time "
        "tomorrow", "convert 250 dollars to euros", "Hi there!", "what is 12 * 9",
        "tell me about tokyo weather and the yen", "帮我查一下航班 CA981"]
REQUESTS = [(ask, TOOLSETS[(i + j) % len(TOOLSETS)]) for i, ask in enumerate(ASKS) for j in range(3)]


def schemas(tools) -> dict:
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}


def check_calls(calls, tools) -> None:
    declared = schemas(tools)
    for call in calls:
        assert call.function.name in declared, call.function.name
        jsonschema.validate(json.loads(call.function.arguments), declared[call.function.name])


def test_chat_calls_only_declared_tools_with_valid_arguments(client):
    assert len(REQUESTS) >= 20
    calls = 0
    for ask, tools in REQUESTS:
        reply = client.chat.completions.create(model=MODEL, tools=tools, max_tokens=300,
                                               messages=[{"role": "user", "content": ask}])
        message = reply.choices[0].message
        if reply.choices[0].finish_reason == "length":  # cut inside the arguments
            continue
        check_calls(message.tool_calls or (), tools)
        calls += len(message.tool_calls or ())
        assert not MARKER.search(message.content or "")
    assert calls > 0


@pytest.mark.parametrize("tools", TOOLSETS[:4])
def test_tool_choice_required_and_named_always_call(client, tools):
    for choice in ["required", {"type": "function", "function": {"name": tools[-1]["function"]["name"]}}]:
        reply = client.chat.completions.create(
            model=MODEL, tools=tools, tool_choice=choice, max_tokens=300,
            messages=[{"role": "user", "content": "Hello, how are you today?"}])
        calls = reply.choices[0].message.tool_calls
        assert calls and reply.choices[0].finish_reason in ("tool_calls", "length")
        if reply.choices[0].finish_reason == "length":
            continue
        check_calls(calls, tools)
        if isinstance(choice, dict):
            assert calls[0].function.name == choice["function"]["name"]


def test_streamed_required_call_is_valid(client):
    stream = client.chat.completions.create(
        model=MODEL, tools=[FLIGHT], tool_choice="required", stream=True, max_tokens=300,
        messages=[{"role": "user", "content": "where is my plane"}])
    names, arguments, finish = set(), "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            names.add(call.function.name) if call.function.name else None
            arguments += call.function.arguments or ""
        finish = (chunk.choices[0].finish_reason if chunk.choices else None) or finish
    assert names == {"lookup_flight"} and finish == "tool_calls"
    jsonschema.validate(json.loads(arguments), schemas([FLIGHT])["lookup_flight"])


ANSWER = {"type": "object", "properties": {"answer": {"type": "integer", "minimum": 0,
                                                      "maximum": 10**9},
                                           "unit": {"enum": ["kg", "lb"]}},
          "required": ["answer", "unit"], "additionalProperties": False}


@pytest.mark.parametrize("ask", ["How much is 10 kg in pounds?", "hello", "What is 6 * 7?"])
def test_response_format_json_schema_always_validates(client, ask):
    reply = client.chat.completions.create(
        model=MODEL, max_tokens=300, messages=[{"role": "user", "content": ask}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "Answer", "schema": ANSWER, "strict": True}})
    jsonschema.validate(json.loads(reply.choices[0].message.content), ANSWER)


def test_responses_api_calls_only_declared_tools(client):
    tools = [{"type": "function", "name": t["function"]["name"],
              "description": t["function"]["description"],
              "parameters": t["function"]["parameters"], "strict": True} for t in [STOCK, FLIGHT]]
    for ask, choice in [("price of MSFT", "auto"), ("hello", "required")]:
        response = client.responses.create(model=MODEL, input=ask, tools=tools,
                                           tool_choice=choice, max_output_tokens=600)
        calls = [item for item in response.output if item.type == "function_call"]
        if response.status == "incomplete":  # cut by max_output_tokens inside the arguments
            continue
        for call in calls:
            assert call.name in {"get_stock_quote", "lookup_flight"}
            jsonschema.validate(json.loads(call.arguments),
                                schemas([STOCK, FLIGHT])[call.name])
        if choice == "required":
            assert calls
        assert not MARKER.search(response.output_text or "")


# ---- the OpenAI Agents SDK -----------------------------------------------------------------

def run_agent(base_url, model_class):
    agents = pytest.importorskip("agents")
    from pydantic import BaseModel

    agents.set_tracing_disabled(True)   # the SDK would export traces to OpenAI
    seen = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: the city name
        """
        seen.append(city)
        return f"Sunny and 21 C in {city}."

    class Report(BaseModel):
        city: str
        summary: str

    result = run_sdk(base_url, model_class, "What's the weather in Paris?", max_turns=4,
                     name="weather", instructions="Answer with the weather report.",
                     tools=[get_weather], output_type=Report)
    return result, seen, Report


def run_sdk(base_url, model_class, task: str, max_turns: int, **agent_options):
    """One Agents SDK run of `task` against the server, on a client closed afterwards."""
    import agents
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    agent = agents.Agent(model=model_class(model=MODEL, openai_client=client),
                         model_settings=agents.ModelSettings(max_tokens=300), **agent_options)

    async def go():
        try:
            return await agents.Runner.run(agent, task, max_turns=max_turns)
        finally:
            await client.close()
    return asyncio.run(go())


@pytest.mark.parametrize("model_class", ["OpenAIChatCompletionsModel", "OpenAIResponsesModel"])
def test_the_agents_sdk_runs_with_a_tool_and_an_output_type(base_url, model_class):
    agents = pytest.importorskip("agents")
    result, seen, report = run_agent(base_url, getattr(agents, model_class))
    assert isinstance(result.final_output, report)  # no ModelBehaviorError, a valid Report


# ---- no tools declared: the turn can only answer ---------------------------------------------

PLAIN_ASKS = ["What is 37 * 43?", "What is 2 + 2?", "Run some python to compute 2 ** 100",
              "search the web for the weather in Paris", "Hi there!"]


def test_chat_without_tools_never_calls_one(client):
    for ask in PLAIN_ASKS:
        for extra in ({}, {"tools": [WEATHER], "tool_choice": "none"}):
            reply = client.chat.completions.create(
                model=MODEL, max_tokens=200, messages=[{"role": "user", "content": ask}], **extra)
            choice = reply.choices[0]
            assert choice.finish_reason in ("stop", "length") and not choice.message.tool_calls, ask
            assert not MARKER.search(choice.message.content or "")


def test_streamed_chat_without_tools_never_calls_one(client):
    for ask in PLAIN_ASKS[:3]:
        stream = client.chat.completions.create(model=MODEL, max_tokens=200, stream=True,
                                                messages=[{"role": "user", "content": ask}])
        finishes, calls = set(), []
        for chunk in stream:
            for choice in chunk.choices:
                calls += choice.delta.tool_calls or []
                finishes.add(choice.finish_reason)
        assert not calls and finishes - {None} <= {"stop", "length"}, ask


def test_responses_without_tools_answer_in_messages_only(client):
    for ask in PLAIN_ASKS[:3]:
        response = client.responses.create(model=MODEL, input=ask, max_output_tokens=300)
        kinds = {item.type for item in response.output}
        assert kinds <= {"message", "reasoning"}, (ask, kinds)
        if response.status == "completed":
            assert response.output_text


def test_raw_completions_of_a_tools_free_prompt_never_address_a_tool(client):
    from agent.harmony.conversation import (prompt_messages, render_prompt, system_message,
                                            user_message)
    prompt = render_prompt(prompt_messages(system_message("low"), None,
                                           [user_message("Use python to compute 2 ** 100")]))
    for seed in range(3):
        reply = client.completions.create(model=MODEL, prompt=prompt, max_tokens=200, seed=seed,
                                          temperature=1.0, extra_body={"skip_special_tokens": False})
        assert " to=" not in reply.choices[0].text and "<|call|>" not in reply.choices[0].text


def test_the_agents_sdk_runs_an_agent_without_tools(base_url):
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    for model_class in (agents.OpenAIChatCompletionsModel, agents.OpenAIResponsesModel):
        result = run_sdk(base_url, model_class, "What is 37 * 43?", max_turns=2, name="A",
                         instructions="Answer briefly.")   # no ModelBehaviorError: no tool call
        assert isinstance(result.final_output, str)
