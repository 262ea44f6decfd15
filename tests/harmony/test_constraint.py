"""Strict tool calls at the format level: which next tokens ToolCallConstraint allows, on real
o200k_harmony token ids, with completions rendered by openai-harmony (the format oracle)."""
from __future__ import annotations

import json

import openai_harmony as oh
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harmony_cases as hc
from agent.harmony import tokenizer as tk
from agent.harmony.constraint import ToolCallConstraint, recipients_ok, tool_call_constraint
from agent.harmony.json_prefix import ObjectPrefix, flat_object, json_prefix_ok
from agent.harmony.messages import BROWSER_TOOLS

WEATHER = "functions.get_current_weather"
SCHEMAS = {
    WEATHER: hc.WEATHER.parameters,                                  # flat: constrained
    "functions.get_location": hc.LOCATION.parameters,                # no schema: free
    "functions.get_multiple_weathers": hc.MULTI.parameters,          # an array: free
    "functions.kitchensink": hc.KITCHENSINK.parameters,              # nested: free
    **{f"browser.{t.name}": t.parameters for t in BROWSER_TOOLS},    # flat: constrained
    "python": None,
}


def ids(text: str) -> list[int]:
    """Real token ids; `<|...|>` markers become the special tokens."""
    return tk.get_encoding().encode(text, allowed_special="all")


def oracle_completion(harmony_encoding, *messages, stop=tk.CALL) -> list[int]:
    """What a model samples after `<|start|>assistant`, rendered by openai-harmony."""
    tokens = harmony_encoding.render_conversation(
        hc.conv(*messages), oh.RenderConversationConfig(auto_drop_analysis=False))
    assert tokens[:2] == [tk.START, tk.encode_text("assistant")[0]]
    return tokens[2:-1] + [stop]


def refusals(tokens: list[int], schemas=SCHEMAS) -> list[int]:
    """Positions of the tokens the constraint refuses, feeding it the whole completion."""
    constraint = ToolCallConstraint(schemas)
    refused = []
    for i, token in enumerate(tokens):
        if not constraint.allows(token):
            refused.append(i)
        constraint.advance(token)
    return refused


def after(text: str, schemas=SCHEMAS) -> ToolCallConstraint:
    constraint = ToolCallConstraint(schemas)
    for token in ids(text):
        assert constraint.allows(token), (text, tk.decode([token]))
        constraint.advance(token)
    return constraint


# ---- what must stay allowed --------------------------------------------------------------

WELL_FORMED = {
    "function call": [hc.assistant("Need the weather.", "analysis"),
                      hc.assistant('{"location": "Oslo", "format": "celsius"}', "commentary",
                                   WEATHER, "<|constrain|>json")],
    "pretty-printed arguments": [hc.assistant('{\n  "location": "Zürich, ZH"\n}', "commentary",
                                              WEATHER, "<|constrain|>json")],
    "browser call": [hc.assistant("search it", "analysis"),
                     hc.assistant('{"query": "harmony format", "topn": 5}', "analysis",
                                  "browser.search")],
    "python call": [hc.assistant("print(sum(range(10)))", "analysis", "python", "code")],
    "preamble, then a call without arguments": [
        hc.assistant("Checking where you are.", "commentary"),
        hc.assistant("{}", "commentary", "functions.get_location", "<|constrain|>json")],
    "free body for a nested schema": [hc.assistant('{"nested": {"a": "x"}}', "commentary",
                                                   "functions.kitchensink", "json")],
}


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_calls_are_allowed_token_by_token(harmony_encoding, name):
    assert refusals(oracle_completion(harmony_encoding, *WELL_FORMED[name])) == []


def test_answers_and_reasoning_are_free(harmony_encoding):
    tokens = oracle_completion(harmony_encoding,
                               hc.assistant("I could write to=nothing here {", "analysis"),
                               hc.assistant("Any text: ünïcödé 🦜 and to=secondsur", "final"),
                               stop=tk.RETURN)
    assert refusals(tokens) == []


def test_recipient_after_the_role_is_checked_too():
    good = ids("<|channel|>analysis<|message|>x<|end|><|start|>assistant to=functions.get_location"
               "<|channel|>commentary json<|message|>{}<|call|>")
    assert refusals(good) == []
    bad = ids("<|channel|>analysis<|message|>x<|end|><|start|>assistant to=functions.get_locaton"
              "<|channel|>commentary json<|message|>{}<|call|>")
    assert refusals(bad)[:1] == [_first_token_past(bad, "functions.get_locat")]


# ---- recipients ------------------------------------------------------------------------------

def _first_token_past(tokens: list[int], prefix: str) -> int:
    """The index of the token that takes the text after the last `to=` beyond `prefix` (the
    longest prefix of a declared name it starts with)."""
    text = ""
    for i, token in enumerate(tokens):
        text += tk.decode([token])
        name = text.rsplit("to=", 1)[-1] if "to=" in text else ""
        if "to=" in text and len(name) > len(prefix):
            return i
    raise AssertionError("prefix never passed")


@pytest.mark.parametrize("recipient, good_prefix", [
    ("functions.get_current_wether", "functions.get_current_we"),   # misspelled
    ("functions.get_weather", "functions.get_"),                    # a name not declared
    ("secondsur", ""),                                              # invented
    ("get_location", ""),                                           # namespace left out
    ("python3", "python"),                                          # runs past a name
])
def test_undeclared_recipients_are_refused_where_they_go_wrong(recipient, good_prefix):
    tokens = ids(f"<|channel|>commentary to={recipient} <|constrain|>json<|message|>{{}}<|call|>")
    assert refusals(tokens)[:1] == [_first_token_past(tokens, good_prefix)]


def test_a_recipient_ends_only_as_a_whole_name():
    unfinished = after("<|channel|>commentary to=functions.get_current")
    for token in (tk.CONSTRAIN, tk.MESSAGE, tk.CHANNEL, tk.CALL, *ids(" json")[:1]):
        assert not unfinished.allows(token)
    assert unfinished.allows(ids("_weather")[0])
    finished = after("<|channel|>commentary to=functions.get_current_weather")
    for token in (tk.CONSTRAIN, tk.MESSAGE, tk.CHANNEL, *ids(" json")[:1]):
        assert finished.allows(token)
    assert not finished.allows(ids("s")[0]) and not finished.allows(ids("_now")[0])


def test_a_name_that_prefixes_another_may_end_or_go_on():
    schemas = {"functions.get": None, "functions.get_x": None}
    constraint = after("<|channel|>commentary to=functions.get", schemas)
    assert constraint.allows(tk.MESSAGE) and constraint.allows(ids("_x")[0])
    assert not constraint.allows(ids("_y")[0])


def test_partial_utf8_cannot_spell_a_recipient():
    pieces = [t for t in range(1000, 60000) if not _decodes(t)][:20]
    constraint = after("<|channel|>commentary to=")
    assert pieces and not any(constraint.allows(t) for t in pieces)


def _decodes(token: int) -> bool:
    try:
        tk.token_bytes(token).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_recipients_ok_judges_only_recipients_still_open():
    names = (b"python",)
    assert recipients_ok(b"<|channel|>analysis to=pyt", 0, names)
    assert not recipients_ok(b"<|channel|>analysis to=pyx", 0, names)
    # a recipient closed before the new token was judged when it closed
    assert recipients_ok(b"to=pyx code", len(b"to=pyx code"), names)
    assert recipients_ok(b"auto=anything", 0, names)  # `to=` inside a word


def test_tool_authored_headers_are_not_constrained():
    tokens = ids("<|channel|>analysis<|message|>x<|end|><|start|>functions.get_location "
                 "to=assistant<|channel|>commentary<|message|>{}<|end|>")
    assert refusals(tokens) == []


# ---- arguments ------------------------------------------------------------------------------

CALL_HEADER = f"<|channel|>commentary to={WEATHER} <|constrain|>json<|message|>"


@pytest.mark.parametrize("body, good_prefix", [
    ('{"locaton": "Oslo"}', '{"loca'),                  # misspelled key
    ('{"city": "Oslo"}', '{"'),                         # undeclared key
    ('{"format": "kelvin"}', '{"format": "'),           # not in the enum
    ('{"location": 42}', '{"location": '),              # not a string
    ('{"location": "a", "location": "b"}', '{"location": "a", "'),  # a key twice
    ('```json\n{"location": "a"}```', ''),              # a fence
])
def test_arguments_off_the_schema_are_refused(body, good_prefix):
    tokens = ids(CALL_HEADER + body + "<|call|>")
    refused = refusals(tokens)
    assert refused, body
    text = tk.decode(tokens[:refused[0]])
    assert text.startswith(CALL_HEADER) and good_prefix.startswith(text[len(CALL_HEADER):])


def test_call_only_once_the_object_is_complete():
    constraint = after(CALL_HEADER + '{"format": "celsius"')
    assert not constraint.allows(tk.CALL) and not constraint.allows(ids("}")[0])  # no location
    constraint = after(CALL_HEADER + '{"location": "Oslo"')
    assert not constraint.allows(tk.CALL) and constraint.allows(ids("}")[0])
    constraint = after(CALL_HEADER + '{"location": "Oslo"}')
    assert constraint.allows(tk.CALL)
    for token in (tk.END, tk.RETURN, tk.START, tk.MESSAGE, tk.CHANNEL, *ids(" x")):
        assert not constraint.allows(token), tk.decode([token])
    assert constraint.allows(ids("\n")[0])


def test_bodies_of_other_schemas_are_free():
    for recipient in ("functions.get_location", "functions.get_multiple_weathers",
                      "functions.kitchensink", "python"):
        tokens = ids(f"<|channel|>commentary to={recipient}<|message|>not json at all<|end|>")
        assert refusals(tokens) == [], recipient


def test_each_message_of_a_completion_is_checked_on_its_own():
    text = ("<|channel|>analysis to=python code<|message|>print(1)<|end|>"
            "<|start|>assistant<|channel|>commentary to=browser.search<|message|>"
            '{"query": "b", "topn": 3}<|call|>')
    assert refusals(ids(text)) == []
    wrong = text.replace('"topn": 3', '"topn": "3"')
    assert len(refusals(ids(wrong))) >= 1


def test_a_forced_token_relaxes_the_rule_until_the_next_message():
    constraint = after("<|channel|>commentary to=functions.get_")
    forced = ids("zzz")[0]
    assert not constraint.allows(forced)
    constraint.advance(forced)  # the sampler found nothing allowed
    assert constraint.allows(ids(" whatever")[0]) and constraint.allows(tk.MESSAGE)
    for token in ids("<|message|>free text<|end|><|start|>assistant<|channel|>commentary to="):
        constraint.advance(token)
    assert not constraint.allows(ids("zzz")[0])
    assert constraint.allows(ids("python")[0])


def test_a_constraint_needs_recipients():
    with pytest.raises(ValueError, match="at least one declared recipient"):
        ToolCallConstraint({})
    assert tool_call_constraint({}) is None
    assert isinstance(tool_call_constraint({"python": None}), ToolCallConstraint)


# ---- the JSON prefix automaton -------------------------------------------------------------

KINDS = {"type": "object", "required": ["s"],
         "properties": {"s": {"type": "string"}, "i": {"type": "integer"},
                        "n": {"type": "number"}, "b": {"type": "boolean"},
                        "z": {"type": "null"}, "o": {"type": ["integer", "string"]},
                        "m": {"type": "string", "nullable": True},
                        "e": {"enum": ["a", 1, None, True]}, "c": {"const": "only"}}}


@pytest.mark.parametrize("text, ok", [
    ("", True), ("  {", True), ("x", False), ("[", False),
    ('{"s": "a\\"b\\u00e9\\n"}', True), ('{"s": "a\\x"', False), ('{"s": "a\\u00g', False),
    ('{"s": "tab\there"', False),                      # raw control character
    ('{"s": "a", "i": -12}', True), ('{"s": "a", "i": 1.5', False), ('{"i": 012', False),
    ('{"i": 1e3', False), ('{"n": -0.5e+3}', False),  # complete, but "s" is required
    ('{"s": "a", "n": -0.5e+3}', True), ('{"n": 1.}', False), ('{"n": -}', False),
    ('{"b": true', True), ('{"b": tru', True), ('{"b": True', False), ('{"b": 1', False),
    ('{"z": null', True), ('{"z": "null"', False),
    ('{"o": 5, "o"', False), ('{"o": "x"', True), ('{"o": 5.5', False),
    ('{"m": null', True), ('{"m": "x"', True),
    ('{"e": "a"', True), ('{"e": 1', True), ('{"e": 10', False), ('{"e": null', True),
    ('{"e": true', True), ('{"e": "b', False), ('{"c": "only"', True), ('{"c": "on', True),
    ('{"c": "on"', False), ('{"c": "other"', False),
    ('{"s": "a"}   ', True), ('{"s": "a"} ,', False), ('{"s": "a"' + " " * 8, True),
    ('{"s": "a"' + " " * 9, False),
    ('{"s": "a",}', False), ('{"s": "a" "i": 1', False), ('{"s" "a"', False),
])
def test_json_prefixes(text, ok):
    assert json_prefix_ok(text, KINDS) is ok


def test_a_string_may_end_a_token_inside_a_character():
    prefix = ObjectPrefix(flat_object(KINDS))
    encoded = '{"s": "Zürich 🦜"}'.encode()
    for i in range(len(encoded)):  # byte by byte, through every multi-byte character
        assert prefix.feed(encoded[i:i + 1])
    assert prefix.complete


def test_no_more_keys_than_declared():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert json_prefix_ok('{"a": 1}', schema) and json_prefix_ok("{}", schema)
    assert not json_prefix_ok('{"a": 1,', schema)  # no key is left to write


@pytest.mark.parametrize("schema", [
    None, {"type": "object"}, {"type": "object", "properties": {}},
    {"type": "array", "items": {"type": "string"}},
    {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}},
    {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}},
    {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
    {"type": "object", "properties": {"a": {}}},                        # any value
    {"type": "object", "properties": {"a": {"enum": [[1]]}}},           # a non-scalar enum
    {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
    {"type": "object", "properties": {'a"b': {"type": "string"}}},
    hc.MULTI.parameters, hc.KITCHENSINK.parameters,
])
def test_only_flat_objects_are_constrained(schema):
    assert flat_object(schema) is None
    with pytest.raises(ValueError, match="flat object schema"):
        json_prefix_ok("{}", schema)


SCALAR = st.one_of(st.text(max_size=8), st.integers(-10**6, 10**6), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False, width=32))
WEATHER_ARGS = st.fixed_dictionaries(
    {"location": st.text(max_size=12)},
    optional={"format": st.sampled_from(["celsius", "fahrenheit"])})


@settings(max_examples=60, deadline=None)
@given(args=WEATHER_ARGS, indent=st.sampled_from([None, 2]),
       separators=st.sampled_from([(",", ":"), (", ", ": ")]), ascii=st.booleans())
def test_every_matching_object_is_accepted_to_the_end(args, indent, separators, ascii):
    text = json.dumps(args, indent=indent, separators=separators, ensure_ascii=ascii)
    constraint = after(CALL_HEADER)
    for token in tk.encode_text(text):  # plain text: a `<|end|>` in a value stays text
        assert constraint.allows(token), (text, tk.decode([token]))
        constraint.advance(token)
    assert constraint.allows(tk.CALL)


@settings(max_examples=60, deadline=None)
@given(args=WEATHER_ARGS, key=st.sampled_from(["location", "format"]), value=SCALAR)
def test_a_value_of_the_wrong_kind_never_completes(args, key, value):
    args = {**args, key: value}
    fits = isinstance(value, str) and (key == "location" or value in ("celsius", "fahrenheit"))
    text = json.dumps(args)
    prefix = ObjectPrefix(flat_object(hc.WEATHER.parameters))
    assert (prefix.feed(text.encode()) and prefix.complete) is fits
