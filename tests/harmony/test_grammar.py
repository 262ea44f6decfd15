"""The Harmony turn grammar (agent/harmony/grammar.py), judged by independent oracles: every
completion sampled under it from random logits parses with openai-harmony, names a declared
tool, and its JSON validates with jsonschema, whatever the logits."""
from __future__ import annotations

import json

import jsonschema
import openai_harmony as oh
import pytest
import torch

from agent.harmony import tokenizer as tk
from agent.harmony.grammar import GrammarError, constraint_for, turn_grammar
from agent.model.generate import Sampler

ORDER = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string", "pattern": "^C[0-9]{3}$"},
        "items": {"type": "array", "minItems": 1, "maxItems": 3,
                  "items": {"$ref": "#/$defs/item"}},
        "shipping": {"enum": ["standard", "express"]},
        "gift": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
        "address": {"type": "object", "additionalProperties": False,
                    "properties": {"city": {"type": "string", "maxLength": 12},
                                   "zip": {"type": "integer", "minimum": 1000, "maximum": 99999}},
                    "required": ["city"]},
    },
    "required": ["customer_id", "items", "shipping"],
    "additionalProperties": False,
    "$defs": {"item": {"type": "object", "additionalProperties": False,
                       "properties": {"sku": {"type": "string", "maxLength": 8},
                                      "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
                       "required": ["sku", "qty"]}},
}
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16}},
           "required": ["city"], "additionalProperties": False}
TOOLS = {"functions.place_order": ORDER, "functions.get_weather": WEATHER, "python": None}
ANSWER = {"type": "object", "properties": {"value": {"type": "integer", "maximum": 10**6, "minimum": -10**6},
                                           "unit": {"enum": ["kg", "lb"]}},
          "required": ["value", "unit"], "additionalProperties": False}


def sample(constraint, seed: int, steps: int = 400) -> list[int]:
    """Sample under the constraint from random logits tilted toward ending messages."""
    generator = torch.Generator().manual_seed(seed)
    sampler = Sampler(temperature=1.0, seed=seed)
    tokens: list[int] = []
    for _ in range(steps):
        logits = torch.randn(tk.VOCAB_SIZE, generator=generator) * 2
        logits[[tk.END, tk.CALL, tk.RETURN]] += 14.0
        token = sampler(logits, constraint)
        constraint.advance(token)
        tokens.append(token)
        if token in (tk.CALL, tk.RETURN):
            break
    return tokens


def oracle(harmony_encoding, tokens):
    return harmony_encoding.parse_messages_from_completion_tokens(tokens, oh.Role.ASSISTANT)


@pytest.mark.parametrize("seed", range(12))
def test_required_calls_name_a_declared_tool_with_valid_arguments(harmony_encoding, seed):
    constraint = constraint_for(TOOLS, tool_choice="required")
    tokens = sample(constraint, seed)
    assert constraint.error is None and tokens[-1] == tk.CALL
    last = oracle(harmony_encoding, tokens)[-1]
    assert last.recipient in TOOLS
    if TOOLS[last.recipient] is not None:
        jsonschema.validate(json.loads(last.content[0].text), TOOLS[last.recipient])


@pytest.mark.parametrize("seed", range(6))
def test_a_named_tool_is_the_one_called(harmony_encoding, seed):
    tokens = sample(constraint_for(TOOLS, tool_choice="functions.place_order"), seed)
    last = oracle(harmony_encoding, tokens)[-1]
    assert last.recipient == "functions.place_order"
    jsonschema.validate(json.loads(last.content[0].text), ORDER)


@pytest.mark.parametrize("seed", range(6))
def test_a_response_format_constrains_the_final_answer(harmony_encoding, seed):
    tokens = sample(constraint_for({}, response_format=ANSWER), seed)
    assert tokens[-1] == tk.RETURN
    messages = oracle(harmony_encoding, tokens)
    assert messages[-1].channel == "final"
    jsonschema.validate(json.loads(messages[-1].content[0].text), ANSWER)


@pytest.mark.parametrize("seed", range(6))
def test_none_never_calls_and_bodies_carry_no_marker_text(harmony_encoding, seed):
    tokens = sample(constraint_for(TOOLS, tool_choice="none"), seed)
    messages = oracle(harmony_encoding, tokens)
    assert tokens[-1] == tk.RETURN and messages[-1].channel == "final"
    assert all(m.recipient in (None, "assistant") for m in messages)
    assert all("<|" not in m.content[0].text for m in messages)


def test_auto_allows_either_ending_and_only_declared_recipients():
    grammar = turn_grammar(TOOLS)
    assert "final" in grammar.split("ending:")[1].splitlines()[0]
    constraint = constraint_for(TOOLS)
    for token in tk.get_encoding().encode("<|channel|>commentary to=functions.", allowed_special="all"):
        constraint.advance(token)
    mask = constraint.mask()
    allowed = {tk.decode([t]) for t in torch.nonzero(mask).flatten().tolist()[:5000]}
    assert "get" in allowed or "place" in allowed or "g" in allowed
    assert not mask[tk.encode_text("delete")[0]]


def test_a_forced_header_is_taken_as_the_start(harmony_encoding):
    header = tk.get_encoding().encode("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
                                      allowed_special="all")
    constraint = constraint_for(TOOLS, tool_choice="functions.get_weather", prefix=header)
    assert constraint.error is None
    tokens = header + sample(constraint, 3)
    jsonschema.validate(json.loads(oracle(harmony_encoding, tokens)[-1].content[0].text), WEATHER)


def test_bad_choices_and_formats_are_one_line_errors():
    with pytest.raises(GrammarError, match="not a declared tool"):
        turn_grammar(TOOLS, tool_choice="functions.nope")
    with pytest.raises(GrammarError, match="needs at least one declared tool"):
        turn_grammar({}, tool_choice="required")
    with pytest.raises(GrammarError):
        constraint_for({}, response_format={"$ref": "#/missing"})


def test_an_uncompilable_tool_schema_is_enforced_as_an_object_and_reported():
    header = tk.get_encoding().encode("<|channel|>commentary to=functions.f json<|message|>",
                                      allowed_special="all")
    constraint = constraint_for({"functions.f": {"$ref": "#/nowhere"}}, prefix=header)
    assert constraint.warnings and "functions.f" in constraint.warnings[0]
    assert constraint.error is None
    allowed = torch.nonzero(constraint.mask()).flatten().tolist()
    assert allowed and all(tk.decode([t]).lstrip().startswith("{") for t in allowed)


# ---- the GBNF form (llama.cpp servers) ----------------------------------------------------

WEATHER_ARGS = {"type": "object", "additionalProperties": False, "required": ["city"],
                "properties": {"city": {"type": "string"},
                               "unit": {"enum": ["celsius", "fahrenheit"]},
                               "days": {"type": "integer"}}}
ORDER_ARGS = {"type": "object",
              "properties": {"items": {"type": "array", "items": {
                  "type": "object", "properties": {"name": {"type": "string"},
                                                   "qty": {"type": "number"}}}},
                             "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                             "mode": {"const": "fast"}, "id": {"type": ["string", "integer"]}},
              "additionalProperties": {"type": "array"}}
GBNF_CASES = [
    (WEATHER_ARGS, [{"city": "Paris"}, {"city": "Oslo", "days": 3, "unit": "celsius"},
                    {"city": 'Zürich "old" town\n', "unit": "fahrenheit"}],
     [{"city": 3}, {"town": "Paris"}, {"city": "Paris", "unit": "kelvin"},
      {"city": "Rome", "days": 1.5}, {}, {"unit": "celsius"}, []]),
    (ORDER_ARGS, [{"items": [{"name": "tea", "qty": 1.5}, {}], "note": None},
                  {"mode": "fast", "id": 7}, {"id": "x7", "other": [1, {"deep": True}]}],
     [{"items": {"name": "tea"}}, {"note": 5}, {"mode": "slow"}, {"id": False}, "text",
      {"other": "not an array"}]),
]


def llguidance_reads_gbnf(expression: str):
    """A matcher for `root ::= expression` read by llguidance's own GBNF converter (an
    independent reader of the syntax llama.cpp takes)."""
    from llguidance.gbnf_to_lark import gbnf_to_lark

    from agent.harmony.grammar import GBNF, check_grammar
    return check_grammar(gbnf_to_lark("\n".join([f"root ::= {expression}", *GBNF.support()])))


@pytest.mark.parametrize("schema, valid, invalid", GBNF_CASES)
def test_gbnf_arguments_follow_the_schema(schema, valid, invalid):
    from agent.harmony.grammar import GBNF
    from agent.harmony.tokenizer import get_encoding
    expression = GBNF.json(schema, "test")
    for instance, expected in [(v, True) for v in valid] + [(i, False) for i in invalid]:
        matcher = llguidance_reads_gbnf(expression)
        tokens = get_encoding().encode(json.dumps(instance, ensure_ascii=False))
        accepted = all(matcher.consume_token(t) for t in tokens) and matcher.is_accepting()
        assert accepted is expected, (instance, matcher.get_error())


def test_no_declared_tools_means_no_recipient_can_be_written(harmony_encoding):
    constraint = constraint_for({})
    for token in tk.get_encoding().encode("<|channel|>commentary", allowed_special="all"):
        constraint.advance(token)
    mask = constraint.mask()
    assert not any(mask[t] for t in tk.encode_text(" to=") + [tk.CALL])
    assert mask[tk.MESSAGE] and constraint.error is None
    for seed in range(4):
        tokens = sample(constraint_for({}), seed)
        messages = oracle(harmony_encoding, tokens)
        assert tokens[-1] == tk.RETURN and messages[-1].channel == "final"
        assert all(m.recipient in (None, "assistant") for m in messages)


UNBOUNDED = {"type": "object", "properties": {"order_id": {"type": "string"},
                                               "notes": {"type": "array", "items": {"type": "string"}}},
             "required": ["order_id"], "additionalProperties": False}


@pytest.mark.parametrize("case", ["call", "typed answer"])
def test_a_budget_bounds_every_string_and_the_turn_ends_inside_it(harmony_encoding, case):
    """Logits that never want to close a string or a note (the runaway seen on the embedded
    model): the grammar still closes them, and the turn ends inside its budget."""
    budget = 512
    if case == "call":
        constraint = constraint_for({"functions.lookup_order": UNBOUNDED},
                                    tool_choice="required", budget=budget)
    else:
        constraint = constraint_for({}, response_format=UNBOUNDED, budget=budget)
    enc = tk.get_encoding()
    closing = [t for t in range(enc.n_vocab) if b'"' in tk.token_bytes(t)]
    generator = torch.Generator().manual_seed(0)
    sampler = Sampler(temperature=1.0, seed=0)
    tokens: list[int] = []
    while len(tokens) < budget and (not tokens or tokens[-1] not in (tk.CALL, tk.RETURN)):
        logits = torch.randn(tk.VOCAB_SIZE, generator=generator) * 2
        logits[closing + [tk.END]] -= 30.0
        token = sampler(logits, constraint)
        constraint.advance(token)
        tokens.append(token)
    assert constraint.error is None
    assert tokens[-1] == (tk.CALL if case == "call" else tk.RETURN), "the budget ran out first"
    value = json.loads(oracle(harmony_encoding, tokens)[-1].content[0].text)
    jsonschema.validate(value, UNBOUNDED)
    assert len(value["order_id"]) <= budget // 8
    assert len(value.get("notes", [])) <= budget // 8


@pytest.mark.parametrize("seed", range(4))
def test_a_closed_vocabulary_can_follow_every_grammar(harmony_encoding, seed):
    """A model with rows for the byte tokens and the special tokens only (the runtime gives
    every other id -inf) still writes a declared call with valid arguments: llguidance masks
    by bytes, so the spelling need not be the canonical one; openai-harmony parses it."""
    from agent.harmony.closed_vocabulary import BYTE_TOKENS
    kept = torch.zeros(tk.VOCAB_SIZE, dtype=torch.bool)
    kept[list(BYTE_TOKENS)] = True
    kept[list(tk.NAMED_SPECIAL_TOKENS.values())] = True
    constraint = constraint_for(TOOLS, tool_choice="required")
    generator = torch.Generator().manual_seed(seed)
    sampler = Sampler(temperature=1.0, seed=seed)
    tokens: list[int] = []
    for _ in range(1500):
        logits = torch.randn(tk.VOCAB_SIZE, generator=generator) * 2
        logits[[tk.END, tk.CALL, tk.RETURN]] += 14.0
        token = sampler(logits.masked_fill(~kept, float("-inf")), constraint)
        constraint.advance(token)
        tokens.append(token)
        if token in (tk.CALL, tk.RETURN):
            break
    assert constraint.error is None and tokens[-1] == tk.CALL
    assert all(kept[t] for t in tokens)
    last = oracle(harmony_encoding, tokens)[-1]
    assert last.recipient in TOOLS
    if TOOLS[last.recipient] is not None:
        jsonschema.validate(json.loads(last.content[0].text), TOOLS[last.recipient])
