"""/v1/chat/completions through the official openai client against a real server.

The model is a scripted backend (real Harmony token streams, replayed), so answers are known;
the prompt the server renders is checked token for token against openai-harmony rendering the
same conversation."""
from __future__ import annotations

import json

import openai_harmony as oh
import pytest

from agent.backends.scripted import ScriptedBackend

ANSWER = "<|channel|>analysis<|message|>User greets.<|end|><|start|>assistant<|channel|>final<|message|>Hello there, friend!<|return|>"
CALL = ('<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary '
        'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>')
AFTER_TOOL = "<|channel|>final<|message|>It is sunny in Paris.<|return|>"

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
           "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                           "parameters": WEATHER}}]


def expected_prompt(enc, effort, messages, instructions=None, tools=None):
    system = oh.Message.from_role_and_content(
        oh.Role.SYSTEM, oh.SystemContent.new().with_reasoning_effort(effort))
    head = [system]
    if instructions or tools:
        dev = oh.DeveloperContent.new()
        if instructions:
            dev = dev.with_instructions(instructions)
        if tools:
            dev = dev.with_function_tools([oh.ToolDescription.new(
                t["function"]["name"], t["function"]["description"],
                parameters=t["function"]["parameters"]) for t in tools])
        head.append(oh.Message.from_role_and_content(oh.Role.DEVELOPER, dev))
    conv = oh.Conversation.from_messages(head + messages)
    return enc.render_conversation_for_completion(conv, oh.Role.ASSISTANT)


def user(text):
    return oh.Message.from_role_and_content(oh.Role.USER, text)


def test_plain_chat_answer_reasoning_usage_and_prompt(serve, harmony_encoding):
    backend = ScriptedBackend([ANSWER])
    with serve(backend) as (_, client):
        r = client.chat.completions.create(
            model="test-model", messages=[{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Hi!"}])
    choice = r.choices[0]
    assert choice.message.content == "Hello there, friend!"
    assert choice.message.reasoning_content == "User greets."
    assert choice.finish_reason == "stop"
    want = expected_prompt(harmony_encoding, oh.ReasoningEffort.MEDIUM, [user("Hi!")],
                           instructions="Be brief.")
    assert backend.prompts[0] == want
    completion = len(harmony_encoding.encode(ANSWER, allowed_special="all"))
    assert r.usage.prompt_tokens == len(want)
    assert r.usage.completion_tokens == completion
    assert r.usage.total_tokens == len(want) + completion
    assert r.usage.completion_tokens_details.reasoning_tokens > 0


def test_streamed_chat_deltas_join_to_the_answer(serve):
    backend = ScriptedBackend([ANSWER, ANSWER])
    with serve(backend) as (_, client):
        chunks = list(client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Hi!"}], stream=True,
            stream_options={"include_usage": True}))
        second = list(client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Hi!"}], stream=True))
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in with_choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                        for c in with_choices)
    assert content == "Hello there, friend!"
    assert reasoning == "User greets."
    assert len([c for c in with_choices if c.choices[0].delta.content]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in second)  # usage only when asked for
    # the same conversation again: the whole prompt is a prefix the backend already holds
    assert backend.last_usage["reused_tokens"] == len(backend.prompts[1])


@pytest.mark.parametrize("effort,expected", [("low", oh.ReasoningEffort.LOW),
                                             ("high", oh.ReasoningEffort.HIGH)])
def test_reasoning_effort_reaches_the_system_message(serve, harmony_encoding, effort, expected):
    backend = ScriptedBackend([ANSWER])
    with serve(backend) as (_, client):
        client.chat.completions.create(model="test-model", reasoning_effort=effort,
                                       messages=[{"role": "user", "content": "Hi!"}])
    assert backend.prompts[0] == expected_prompt(harmony_encoding, expected, [user("Hi!")])
    text = harmony_encoding.decode(backend.prompts[0])
    assert f"Reasoning: {effort}" in text


def test_tool_call_round_trip(serve, harmony_encoding):
    backend = ScriptedBackend([CALL, AFTER_TOOL])
    with serve(backend) as (_, client):
        messages = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="test-model", messages=messages,
                                               tools=TOOLS)
        msg = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        (call,) = msg.tool_calls
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        messages += [{"role": "assistant", "content": None, "reasoning_content": msg.reasoning_content,
                      "tool_calls": [call.model_dump()]},
                     {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'}]
        second = client.chat.completions.create(model="test-model", messages=messages,
                                                tools=TOOLS)
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    history = [
        user("Weather in Paris?"),
        oh.Message.from_role_and_content(oh.Role.ASSISTANT, "Need the weather.").with_channel("analysis"),
        oh.Message.from_role_and_content(oh.Role.ASSISTANT, '{"city": "Paris"}')
        .with_channel("commentary").with_recipient("functions.get_weather")
        .with_content_type("<|constrain|>json"),
        oh.Message.from_author_and_content(oh.Author.new(oh.Role.TOOL, "functions.get_weather"),
                                           '{"sky": "sunny"}').with_channel("commentary")
        .with_recipient("assistant"),
    ]
    assert backend.prompts[1] == expected_prompt(harmony_encoding, oh.ReasoningEffort.MEDIUM,
                                                 history, tools=TOOLS)


def test_streamed_tool_call_deltas(serve):
    with serve(ScriptedBackend([CALL])) as (_, client):
        chunks = list(client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS,
            stream=True))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id and calls[0].function.name == "get_weather"
    assert len(calls) > 2  # the arguments arrive in pieces
    assert all(tc.index == 0 for tc in calls)
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_named_tool_choice_writes_the_call_header(serve, harmony_encoding):
    backend = ScriptedBackend(['{"city": "Oslo"}<|call|>'])
    with serve(backend) as (_, client):
        r = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})
    (call,) = r.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Oslo"}')
    assert harmony_encoding.decode(backend.prompts[0]).endswith(
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>")


def test_tool_choice_none_hides_the_tools(serve, harmony_encoding):
    backend = ScriptedBackend([ANSWER])
    with serve(backend) as (_, client):
        client.chat.completions.create(model="test-model", tools=TOOLS, tool_choice="none",
                                       messages=[{"role": "user", "content": "Hi!"}])
    assert "get_weather" not in harmony_encoding.decode(backend.prompts[0])


def test_stop_strings_and_max_tokens(serve):
    backend = ScriptedBackend([ANSWER, ANSWER])
    with serve(backend) as (_, client):
        stopped = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Hi!"}], stop=[", fr"])
        cut = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Hi!"}], max_tokens=3)
    assert stopped.choices[0].message.content == "Hello there"
    assert stopped.choices[0].finish_reason == "stop"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 3


def test_response_format_json_schema_reaches_the_developer_message(serve, harmony_encoding):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    backend = ScriptedBackend(['<|channel|>final<|message|>{"answer": 4}<|return|>'])
    with serve(backend) as (url, client):
        r = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "2+2"}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "sum", "schema": schema}})
        import httpx
        missing = httpx.post(url + "/v1/chat/completions", json={
            "model": "test-model", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema"}})
    assert json.loads(r.choices[0].message.content) == {"answer": 4}
    text = harmony_encoding.decode(backend.prompts[0])
    assert "# Response Formats\n\n## sum\n\n" in text and '"required":["answer"]' in text
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "response_format"
