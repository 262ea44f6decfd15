"""/v1/responses through the official openai client: output items, streaming events,
function calls and previous_response_id continuation."""
from __future__ import annotations

import json

import openai
import openai_harmony as oh
import pytest

from agent.backends.scripted import ScriptedBackend

ANSWER = "<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>Four.<|return|>"
CALL = ('<|channel|>analysis<|message|>Look it up.<|end|><|start|>assistant<|channel|>commentary '
        'to=functions.lookup <|constrain|>json<|message|>{"q": "pi"}<|call|>')
TOOLS = [{"type": "function", "name": "lookup", "description": "Search a table",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]


def test_plain_response_with_instructions_and_effort(serve, harmony_encoding):
    backend = ScriptedBackend([ANSWER])
    with serve(backend) as (_, client):
        r = client.responses.create(model="test-model", input="2+2?", instructions="Answer in words.",
                                    reasoning={"effort": "high"})
    assert r.status == "completed"
    assert r.output_text == "Four."
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert r.output[0].content[0].text == "Easy."
    assert r.usage.input_tokens == len(backend.prompts[0]) and r.usage.output_tokens > 0
    conv = oh.Conversation.from_messages([
        oh.Message.from_role_and_content(oh.Role.SYSTEM, oh.SystemContent.new()
                                         .with_reasoning_effort(oh.ReasoningEffort.HIGH)),
        oh.Message.from_role_and_content(oh.Role.DEVELOPER, oh.DeveloperContent.new()
                                         .with_instructions("Answer in words.")),
        oh.Message.from_role_and_content(oh.Role.USER, "2+2?")])
    assert backend.prompts[0] == harmony_encoding.render_conversation_for_completion(
        conv, oh.Role.ASSISTANT)


def test_streamed_events_are_well_formed(serve):
    with serve(ScriptedBackend([ANSWER])) as (_, client):
        events = list(client.responses.create(model="test-model", input="2+2?", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert (text, reasoning) == ("Four.", "Easy.")
    assert types.count("response.output_item.added") == types.count("response.output_item.done") == 2
    assert events[-1].response.output_text == "Four."


def test_function_call_then_previous_response_id(serve, harmony_encoding):
    backend = ScriptedBackend([CALL, "<|channel|>final<|message|>Pi is 3.14.<|return|>"])
    with serve(backend) as (_, client):
        first = client.responses.create(model="test-model", input="What is pi?", tools=TOOLS)
        (call,) = [item for item in first.output if item.type == "function_call"]
        assert call.name == "lookup" and json.loads(call.arguments) == {"q": "pi"}
        second = client.responses.create(
            model="test-model", previous_response_id=first.id, tools=TOOLS,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "3.14"}])
    assert second.output_text == "Pi is 3.14."
    text = harmony_encoding.decode(backend.prompts[1])
    # the earlier turn is in the prompt: the question, the call (with its reasoning, since the
    # tool chain is ongoing) and the tool's answer authored by the function
    assert backend.prompts[1][:len(backend.prompts[0])] == backend.prompts[0]
    assert "Look it up." in text and '{"q": "pi"}<|call|>' in text
    assert text.endswith("<|start|>functions.lookup to=assistant<|channel|>commentary<|message|>3.14"
                         "<|end|><|start|>assistant")


def test_streamed_function_call_events(serve):
    with serve(ScriptedBackend([CALL])) as (_, client):
        events = list(client.responses.create(model="test-model", input="pi?", tools=TOOLS,
                                              stream=True))
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(args) == {"q": "pi"} and done[0].arguments == args
    assert events[-1].response.output[-1].type == "function_call"


def test_unknown_previous_response_and_bad_items(serve):
    with serve(ScriptedBackend([])) as (_, client):
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="test-model", input="x", previous_response_id="resp_nope")
        with pytest.raises(openai.BadRequestError) as bad_item:
            client.responses.create(model="test-model", input=[{"type": "web_search_call", "id": "1"}])
        with pytest.raises(openai.BadRequestError) as orphan:
            client.responses.create(model="test-model", input=[
                {"type": "function_call_output", "call_id": "c1", "output": "1"}])
    assert "web_search_call" in bad_item.value.body["message"]
    assert "c1" in orphan.value.body["message"]


def test_length_limit_marks_the_response_incomplete(serve):
    with serve(ScriptedBackend([ANSWER])) as (_, client):
        r = client.responses.create(model="test-model", input="2+2?", max_output_tokens=4)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"


def test_text_format_json_schema(serve, harmony_encoding):
    backend = ScriptedBackend(['<|channel|>final<|message|>{"n": 4}<|return|>'])
    with serve(backend) as (_, client):
        r = client.responses.create(model="test-model", input="2+2", text={"format": {
            "type": "json_schema", "name": "count",
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}})
    assert json.loads(r.output_text) == {"n": 4}
    assert r.text.format.type == "json_schema"
    assert "## count" in harmony_encoding.decode(backend.prompts[0])
