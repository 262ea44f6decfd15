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


# --- random schemas (only constructs openai-harmony renders) vs openai-harmony ----------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

words = st.text(st.sampled_from("abcXYZ _-é🦜\n\"'"), min_size=1, max_size=8)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
              st.sampled_from([0.5, -2.25, 3.0]), words),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(words, inner, max_size=3)), max_leaves=6)


@st.composite
def annotated(draw, base):
    schema = dict(draw(base))
    for key, value in (("description", words), ("title", words), ("default", json_value),
                       ("nullable", st.booleans()), ("examples", st.lists(words, max_size=2))):
        if draw(st.booleans()) and draw(st.booleans()):
            schema[key] = draw(value)
    return schema


leaf = st.one_of(
    st.just({"type": "string"}), st.just({"type": "number"}), st.just({"type": "integer"}),
    st.just({"type": "boolean"}), st.just({}), st.just({"type": "array"}),
    st.builds(lambda e: {"type": "string", "enum": e}, st.lists(words, max_size=3)),
    st.builds(lambda e, i: {"type": "string", "enum": e, "default": e[i % len(e)]},
              st.lists(words, min_size=1, max_size=3), st.integers(0, 2)),
    st.builds(lambda t: {"type": t}, st.lists(st.sampled_from(["string", "integer", "null"]),
                                              max_size=3)))


def _containers(inner):
    props = st.dictionaries(st.sampled_from(["a", "b_c", "Dee", "x1"]), inner, max_size=3)
    return st.one_of(
        st.builds(lambda p, r: {"type": "object", "properties": p,
                                "required": [k for k in p if r]}, props, st.booleans()),
        st.builds(lambda i: {"type": "array", "items": i}, inner),
        st.builds(lambda v: {"oneOf": v}, st.lists(inner, min_size=1, max_size=3)))


schemas = st.recursive(annotated(leaf), lambda inner: annotated(_containers(inner)),
                       max_leaves=8)


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.builds(lambda p: {"type": "object", "properties": p},
                 st.dictionaries(st.sampled_from(["p", "q_r", "s"]), schemas, max_size=3)))
def test_random_schemas_match_openai_harmony(harmony_encoding, schema):
    assert dev_tokens_ours(schema) == dev_tokens_harmony(harmony_encoding, schema)
