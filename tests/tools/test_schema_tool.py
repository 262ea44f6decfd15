"""Tools from a raw JSON Schema and a callable: checked by jsonschema, rendered as
openai-harmony renders the schema, errors naming the tool and the field."""
from __future__ import annotations

import asyncio

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.loop import Agent
from agent.tools import SchemaTool, Toolbox, tool

ORDER_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "item": {"type": "string", "description": "What to order", "minLength": 1},
        "quantity": {"type": "integer", "minimum": 1, "default": 1},
        "size": {"type": "string", "enum": ["small", "large"]},
        "extras": {"type": "array", "items": {"$ref": "#/$defs/extra"}},
    },
    "required": ["item"],
    "additionalProperties": False,
    "$defs": {"extra": {"type": "object", "title": "Extra", "required": ["name"],
                        "properties": {"name": {"type": "string"}}}},
}


def place_order(item, quantity=1, size="small", extras=()):
    return {"item": item, "quantity": quantity, "size": size,
            "extras": [e["name"] for e in extras]}


def call(box, recipient, arguments):
    return asyncio.run(box.call(recipient, arguments))


def test_arguments_are_checked_against_the_raw_schema():
    order = SchemaTool("order", "Order food.", ORDER_SCHEMA, place_order)
    box = Toolbox([order])
    ok = call(box, "functions.order", '{"item": "soup", "quantity": 2, "extras": [{"name": "bread"}]}')
    assert (ok.error, ok.data) == (False, {"item": "soup", "quantity": 2, "size": "small",
                                           "extras": ["bread"]})
    assert ok.text == '{"item": "soup", "quantity": 2, "size": "small", "extras": ["bread"]}'
    cases = {
        '{"quantity": 2}': "arguments: 'item' is a required property",
        '{"item": "soup", "quantity": 0}': "quantity: 0 is less than the minimum of 1",
        '{"item": "soup", "quantity": "2"}': "quantity: '2' is not of type 'integer'",
        '{"item": "soup", "size": "huge"}': "size: 'huge' is not one of ['small', 'large']",
        '{"item": "soup", "extras": [{"name": "a"}, {}]}': "extras.1: 'name' is a required property",
        '{"item": "soup", "colour": "red"}': "('colour' was unexpected)",
        '{"item": ""}': "item: '' should be non-empty",
    }
    for arguments, expected in cases.items():
        result = call(box, "functions.order", arguments)
        assert result.error and result.data == {"invalid_arguments": True}, arguments
        assert result.text.startswith("Invalid arguments for functions.order: "), result.text
        assert expected in result.text, (arguments, result.text)
    two = call(box, "functions.order", '{"quantity": 0}').text
    assert "item" in two and "quantity" in two  # every failing field, in one message
    assert "not valid JSON" in call(box, "functions.order", '{"item": ').text


def test_schema_shown_to_the_model_equals_openai_harmony(harmony_encoding):
    from openai_harmony import DeveloperContent, Message, Role, ToolDescription

    from agent.harmony.messages import DeveloperContent as OurContent, Message as OurMessage
    from agent.harmony.render import render
    order = SchemaTool("order", "Order food.", ORDER_SCHEMA, place_order)
    ours = render(OurMessage.from_role_and_content(
        "developer", OurContent.new().with_function_tools(Toolbox([order]).function_descriptions())))
    raw = {k: v for k, v in ORDER_SCHEMA.items() if k != "$defs"}
    raw["properties"] = {**raw["properties"], "extras": {
        "type": "array", "items": ORDER_SCHEMA["$defs"]["extra"]}}  # the $ref, inlined by hand
    oracle = harmony_encoding.render(Message.from_role_and_content(
        Role.DEVELOPER, DeveloperContent.new().with_function_tools(
            [ToolDescription.new("order", "Order food.", raw)])))
    assert harmony_encoding.decode_utf8(ours) == harmony_encoding.decode_utf8(oracle)
    text = harmony_encoding.decode_utf8(oracle)
    assert "// What to order\nitem: string," in text
    assert 'size?: "small" | "large",' in text and "quantity?: number, // default: 1" in text


def test_the_decorator_form_async_callables_and_failures():
    @tool(name="lookup", schema={"type": "object", "properties": {"key": {"type": "string"}},
                                 "required": ["key"]})
    async def find(key):
        """Looks a key up."""
        if key == "boom":
            raise KeyError(key)
        return key.upper()

    assert isinstance(find, SchemaTool) and find.description == "Looks a key up."
    box = Toolbox([find])
    assert call(box, "functions.lookup", '{"key": "abc"}').text == "ABC"
    failed = call(box, "functions.lookup", '{"key": "boom"}')
    assert failed.error and failed.text == "Error: KeyError: 'boom'"
    assert "key: 5 is not of type 'string'" in call(box, "functions.lookup", '{"key": 5}').text


def test_broken_schemas_and_names_are_refused_at_construction():
    with pytest.raises(ValueError, match=r"tool 'bad': invalid parameters schema at "
                                         r"properties/n/type: 'integr' is not valid"):
        SchemaTool("bad", "", {"type": "object", "properties": {"n": {"type": "integr"}}}, print)
    with pytest.raises(ValueError, match="must be a JSON object"):
        SchemaTool("bad", "", ["not", "a", "schema"], print)
    with pytest.raises(ValueError, match="reserved for the built-in python tool"):
        SchemaTool("python", "", {}, print)
    with pytest.raises(ValueError, match="must be an identifier"):
        SchemaTool("get-time", "", {}, print)


def test_an_agent_fixes_its_call_after_the_schema_error():
    order = SchemaTool("order", "Order food.", ORDER_SCHEMA, place_order)
    call_order = "<|channel|>commentary to=functions.order <|constrain|>json<|message|>{}<|call|>"
    backend = ScriptedBackend([call_order.replace("{}", '{"item": "soup", "size": "xl"}'),
                               call_order.replace("{}", '{"item": "soup"}'),
                               "<|channel|>final<|message|>Ordered.<|return|>"])
    with Agent(backend, tools=[order], effort="low", date=None) as agent:
        result = agent.run("Order soup")
    assert result.final == "Ordered."
    first, second = result.tool_calls
    assert first.error and "size: 'xl' is not one of ['small', 'large']" in first.output
    assert not second.error and '"item": "soup"' in second.output
