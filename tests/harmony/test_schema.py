"""JSON Schema -> TypeScript-like text: openai-harmony's rules, plus $ref/anyOf/allOf/const."""
from __future__ import annotations

import openai_harmony as oh
from pydantic import BaseModel, Field

from agent.harmony import DeveloperContent, Message, Role, ToolDescription, render
from agent.harmony.schema import normalize, schema_to_typescript


def dev_tokens_ours(parameters):
    dev = DeveloperContent.new().with_function_tools([ToolDescription.new("f", "F.", parameters)])
    return render(Message.from_role_and_content(Role.DEVELOPER, dev))


def dev_tokens_harmony(harmony_encoding, parameters):
    dev = oh.DeveloperContent.new().with_function_tools([oh.ToolDescription.new("f", "F.",
                                                                                parameters)])
    return harmony_encoding.render(oh.Message.from_role_and_content(oh.Role.DEVELOPER, dev))


REFS = {
    "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"},
              "Point": {"type": "object", "properties": {"x": {"type": "number"},
                                                         "y": {"type": "number"}},
                        "required": ["x", "y"]}},
    "type": "object",
    "properties": {
        "unit": {"$ref": "#/$defs/Unit", "default": "c"},
        "where": {"$ref": "#/$defs/Point", "description": "A point"},
        "path": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "size": {"anyOf": [{"type": "integer"}, {"type": "string"}], "description": "n or name"},
        "mode": {"const": "fast"},
        "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
                           {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
    },
    "required": ["where"],
}
# The same schema written only with constructs openai-harmony renders (its `any` otherwise).
REFS_BY_HAND = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit", "default": "c"},
        "where": {"type": "object", "properties": {"x": {"type": "number"},
                                                   "y": {"type": "number"}},
                  "required": ["x", "y"], "description": "A point"},
        "path": {"type": "array", "items": {"type": "object",
                                            "properties": {"x": {"type": "number"},
                                                           "y": {"type": "number"}},
                                            "required": ["x", "y"]}},
        "note": {"type": "string", "nullable": True, "default": None},
        "size": {"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "n or name"},
        "mode": {"type": "string", "enum": ["fast"]},
        "both": {"type": "object", "properties": {"a": {"type": "string"},
                                                  "b": {"type": "integer"}},
                 "required": ["b"]},
    },
    "required": ["where"],
}


def test_refs_any_of_all_of_const_render_as_their_harmony_equivalents(harmony_encoding):
    assert dev_tokens_ours(REFS) == dev_tokens_harmony(harmony_encoding, REFS_BY_HAND)
    text = schema_to_typescript(REFS)
    assert "note?: string | null, // default: null" in text
    assert 'unit?: "c" | "f", // default: c' in text
    assert "path?: {\n" in text and "}[]," in text
    assert "size?:\n | number\n | string\n," in text


def test_plain_schemas_are_not_changed_by_normalize():
    plain = REFS_BY_HAND
    assert normalize(plain) == plain


def test_recursive_and_unresolvable_refs_do_not_loop():
    tree = {"$defs": {"Node": {"type": "object", "properties": {
        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "$ref": "#/$defs/Node"}
    assert schema_to_typescript(tree) == "{\nchildren?: any[],\n}"  # one level, then any
    assert schema_to_typescript({"$ref": "http://example.com/x"}) == "any"


class Address(BaseModel):
    street: str = Field(description="Street and number")
    zip_code: str | None = None


class Order(BaseModel):
    """An order."""
    items: list[str]
    address: Address
    express: bool = False


def test_pydantic_generated_schema_renders_without_any():
    text = schema_to_typescript(Order.model_json_schema())
    assert "any" not in text
    assert "// Street and number\n" in text and "zip_code?: string | null, // default: null" in text
    assert "express?: boolean, // default: false" in text


def test_examples_and_top_level_one_of_match_harmony(harmony_encoding):
    schema = {"oneOf": [{"type": "string", "enum": ["a"], "default": "a", "description": "A"},
                        {"type": "array", "items": {"type": ["string", "integer"]}}]}
    assert dev_tokens_ours(schema) == dev_tokens_harmony(harmony_encoding, schema)
