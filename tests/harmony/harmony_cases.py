"""Conversations built with openai-harmony's own API: the oracle's inputs for the render tests.

Each case is (name, openai_harmony.Conversation). They cover every reasoning effort, with and
without dates and instructions, browser + python + many function tools with rich schemas,
multi-turn tool calls, chain-of-thought dropping, tool messages and content types.
"""
from __future__ import annotations

import openai_harmony as oh

R = oh.Role

WEATHER = oh.ToolDescription.new(
    "get_current_weather", "Gets the current weather in the provided location.",
    {"type": "object",
     "properties": {"location": {"type": "string",
                                 "description": "The city and state, e.g. San Francisco, CA"},
                    "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                               "default": "celsius"}},
     "required": ["location"]})
LOCATION = oh.ToolDescription.new("get_location", "Gets the location of the user.")
MULTI = oh.ToolDescription.new(
    "get_multiple_weathers", "Gets the current weather in the provided list of locations.",
    {"type": "object",
     "properties": {"locations": {"type": "array", "items": {"type": "string"},
                                  "description": "List of city and state, e.g. [\"SF\", \"NY\"]"},
                    "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                               "default": "celsius"}},
     "required": ["locations"]})
KITCHENSINK = oh.ToolDescription.new(
    "kitchensink", "A function with various complex schemas.\nSecond line of the description.",
    {"description": "params object", "type": "object",
     "properties": {
         "string": {"type": "string", "title": "STRING", "description": "A string",
                    "examples": ["hello", "world"]},
         "string_nullable": {"type": "string", "nullable": True,
                             "description": "A nullable string", "default": "the default"},
         "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
         "oneof_string_or_number": {
             "oneOf": [{"type": "string", "default": "default_string_in_oneof"},
                       {"type": "number", "description": "numbers can happen too"}],
             "description": "a oneof", "default": 20},
         "oneof_same_desc": {
             "oneOf": [{"type": "string", "description": "same"},
                       {"type": "boolean", "nullable": True}],
             "description": "same"},
         "count": {"type": "integer", "default": 3},
         "ratio": {"type": "number", "default": 0.5},
         "flag": {"type": "boolean", "default": False},
         "tags": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
         "anything": {"type": "array"},
         "mixed": {"type": ["integer", "string", "null"]},
         "nested": {"type": "object", "description": "A nested object",
                    "properties": {"a": {"type": "string", "description": "inner a"},
                                   "b": {"type": "object",
                                         "properties": {"deep": {"type": "boolean"}},
                                         "required": ["deep"]}},
                    "required": ["a"]},
         "rows": {"type": "array", "description": "rows of things",
                  "items": {"type": "object", "properties": {"id": {"type": "integer"},
                                                             "label": {"type": "string"}},
                            "required": ["id"]}},
         "options": {"type": "object", "properties": {}, "default": {"k": [1, 2]}},
         "unknown": {"description": "no type at all"},
     },
     "required": ["string_enum", "count"]})
TOP_ONE_OF = oh.ToolDescription.new(
    "pick", "Either form.",
    {"oneOf": [{"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
                "description": "by id"},
               {"type": "object", "properties": {"name": {"type": "string"}},
                "default": {"name": "x"}}]})
SEARCH_DOCS = oh.ToolDescription.new(
    "search_docs", "Search the internal documentation.",
    {"type": "object",
     "properties": {"query": {"type": "string", "description": "What to look for"},
                    "limit": {"type": "integer", "description": "Max results", "default": 5},
                    "sort": {"type": "string", "enum": ["relevance", "date"],
                             "default": "relevance", "description": "Ordering"}},
     "required": ["query"]})

ALL_FUNCTIONS = [LOCATION, WEATHER, MULTI, KITCHENSINK, TOP_ONE_OF, SEARCH_DOCS]


def system(effort=oh.ReasoningEffort.MEDIUM, date=None, browser=False, python=False, **kw):
    sys = oh.SystemContent.new()
    sys.reasoning_effort = effort
    if date:
        sys = sys.with_conversation_start_date(date)
    if browser:
        sys = sys.with_browser_tool()
    if python:
        sys = sys.with_python_tool()
    for key, value in kw.items():
        setattr(sys, key, value)
    return oh.Message.from_role_and_content(R.SYSTEM, sys)


def developer(instructions=None, functions=None):
    dev = oh.DeveloperContent.new()
    if instructions is not None:
        dev = dev.with_instructions(instructions)
    if functions is not None:
        dev = dev.with_function_tools(functions)
    return oh.Message.from_role_and_content(R.DEVELOPER, dev)


def user(text, name=None):
    if name:
        return oh.Message.from_author_and_content(oh.Author.new(R.USER, name), text)
    return oh.Message.from_role_and_content(R.USER, text)


def assistant(text, channel, recipient=None, content_type=None):
    msg = oh.Message.from_role_and_content(R.ASSISTANT, text).with_channel(channel)
    if recipient:
        msg = msg.with_recipient(recipient)
    if content_type:
        msg = msg.with_content_type(content_type)
    return msg


def tool(name, text, channel="commentary"):
    msg = oh.Message.from_author_and_content(oh.Author.new(R.TOOL, name), text)
    msg = msg.with_recipient("assistant")
    return msg.with_channel(channel) if channel else msg


def conv(*messages):
    return oh.Conversation.from_messages(list(messages))


def weather_chain(final=True):
    msgs = [system(), developer("Use tools.", [LOCATION, WEATHER]), user("Weather in SF?"),
            assistant("Need to call weather.", "analysis"),
            assistant('{"location": "San Francisco, CA"}', "commentary",
                      "functions.get_current_weather", "<|constrain|>json"),
            tool("functions.get_current_weather", '{"temperature": 20, "sunny": true}')]
    if final:
        msgs += [assistant("Got it, 20 degrees.", "analysis"),
                 assistant("It is 20°C and sunny in SF.", "final")]
    return conv(*msgs)


def simple_cases():
    cases = []
    for effort in (oh.ReasoningEffort.LOW, oh.ReasoningEffort.MEDIUM, oh.ReasoningEffort.HIGH,
                   None):
        for date in (None, "2025-06-28"):
            for instructions in (None, "Always respond in riddles"):
                msgs = [system(effort, date)]
                if instructions:
                    msgs.append(developer(instructions))
                msgs.append(user("What is 2 + 2?"))
                label = f"effort={getattr(effort, 'value', None)} date={date} instr={bool(instructions)}"
                cases.append((label, conv(*msgs)))
    return cases


def tool_cases():
    return [
        ("browser", conv(system(date="2025-06-28", browser=True), user("news?"))),
        ("python", conv(system(oh.ReasoningEffort.LOW, python=True), user("compute 3^7"))),
        ("browser+python", conv(system(oh.ReasoningEffort.HIGH, "2025-01-01", True, True),
                                developer("Be terse."), user("hi"))),
        ("browser+functions", conv(system(browser=True), developer("Help.", [WEATHER]),
                                   user("Weather?"))),
        ("all tools + many functions", conv(system(oh.ReasoningEffort.HIGH, "2025-06-28",
                                                   True, True),
                                            developer("Always respond in riddles", ALL_FUNCTIONS),
                                            user("What is the weather like in SF?"))),
        ("functions without instructions", conv(system(), developer(None, [LOCATION, MULTI]),
                                                user("where am I?"))),
        ("empty function list", conv(system(), developer("x", []), user("y"))),
        ("kitchensink only", conv(system(oh.ReasoningEffort.LOW), developer(None, [KITCHENSINK]),
                                  user("go"))),
        ("top-level oneOf", conv(system(), developer("pick one", [TOP_ONE_OF]), user("go"))),
        ("extra namespaces", conv(
            oh.Message.from_role_and_content(R.SYSTEM, oh.SystemContent.new().with_tools(
                oh.ToolNamespaceConfig(name="calendar", description="Calendar tools.\r\nLocal.",
                                       tools=[SEARCH_DOCS])).with_python_tool()),
            oh.Message.from_role_and_content(R.DEVELOPER, oh.DeveloperContent.new()
                                             .with_function_tools([WEATHER])
                                             .with_tools(oh.ToolNamespaceConfig(
                                                 name="notes", description="Plain text\n\nnotes.",
                                                 tools=[]))),
            user("plan my day"))),
    ]


def system_variant_cases():
    return [
        ("custom identity, no cutoff", conv(system(model_identity="You are a pirate.",
                                                   knowledge_cutoff=None), user("arr"))),
        ("no identity, no channels", conv(system(model_identity=None, channel_config=None),
                                          user("x"))),
        ("channels not required", conv(system(channel_config=oh.ChannelConfig(
            valid_channels=["analysis", "final"], channel_required=False)), user("x"))),
        ("empty system", conv(system(None, None, model_identity=None, knowledge_cutoff=None,
                                     channel_config=None), user("x"))),
        ("named user, tricky text", conv(system(), user("a <|end|> b\r\n\tc  ", name="alice"),
                                         user("emoji 🦜 and 中文"))),
    ]


def multi_turn_cases():
    browser_call = [system(date="2025-06-28", browser=True), user("Latest on X?"),
                    assistant("Search first.", "analysis"),
                    assistant('{"query": "X news", "topn": 3}', "analysis", "browser.search"),
                    tool("browser.search", "[0] X news (example.com)\nL0: something", "analysis"),
                    assistant("Found it.", "analysis"),
                    assistant("X happened 【0†L0】.", "final")]
    python_call = [system(python=True), user("3^7?"), assistant("Use python.", "analysis"),
                   assistant("print(3**7)", "analysis", "python"),
                   tool("python", "2187", None), assistant("2187", "final")]
    two_turns = [system(), user("2+2?"), assistant("Easy.", "analysis"), assistant("4", "final"),
                 user("3+3?"), assistant("Also easy.", "analysis"), assistant("6", "final")]
    return [
        ("tool chain, ongoing (CoT kept)", weather_chain(final=False)),
        ("tool chain, finished (CoT dropped)", weather_chain(final=True)),
        ("browser call chain", conv(*browser_call)),
        ("browser call ongoing", conv(*browser_call[:5])),
        ("python call chain", conv(*python_call)),
        ("python call ongoing", conv(*python_call[:5])),
        ("two turns, CoT dropping", conv(*two_turns)),
        ("analysis between finals kept", conv(*two_turns[:4], user("more"),
                                               assistant("hmm", "analysis"),
                                               assistant("more!", "commentary"),
                                               assistant("done", "final"))),
        ("last assistant analysis", conv(system(), user("x"), assistant("thinking", "analysis"))),
        ("json content type, no constrain", conv(
            system(), developer(None, [WEATHER]), user("w?"),
            assistant('{"location":"Paris"}', "commentary", "functions.get_current_weather",
                      "json"),
            tool("functions.get_current_weather", "sunny"))),
        ("preamble then two calls", conv(
            system(), developer("Be useful.", [WEATHER, LOCATION]), user("weather here?"),
            assistant("Let me check your location and weather.", "commentary"),
            assistant("{}", "commentary", "functions.get_location", "<|constrain|>json"),
            tool("functions.get_location", '"Paris"'),
            assistant('{"location":"Paris"}', "commentary", "functions.get_current_weather",
                      "<|constrain|>json"),
            tool("functions.get_current_weather", '{"t": 18}'),
            assistant("18 degrees in Paris.", "final"))),
        ("recipient all, tool without channel", conv(
            system(), user("x"), assistant("note", "commentary", "all"),
            tool("functions.get_location", "Paris", None))),
        ("long multi-turn with dates", conv(
            system(oh.ReasoningEffort.HIGH, "2024-12-31", browser=True, python=True),
            developer("Cite sources.", [SEARCH_DOCS]), user("q1"),
            assistant("a1 thinking", "analysis"), assistant("answer 1", "final"), user("q2"),
            assistant("a2 thinking", "analysis"),
            assistant('{"query":"docs"}', "commentary", "functions.search_docs",
                      "<|constrain|>json"),
            tool("functions.search_docs", '[{"title": "Doc"}]'),
            assistant("a2 more", "analysis"))),
    ]


def all_cases():
    return simple_cases() + tool_cases() + system_variant_cases() + multi_turn_cases()
