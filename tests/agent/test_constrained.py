"""Strict tool calls through the sampler, the real runtime (the embedded model) and the agent
loop: constrained completions name a declared tool with arguments that fit its schema, as
openai-harmony parses them, and without a constraint generation is exactly as before."""
from __future__ import annotations

import json
from collections import Counter

import jsonschema
import pytest
import torch

from agent import Agent
from agent.backends.local import LocalBackend
from agent.harmony import tokenizer as tk
from agent.harmony.grammar import constraint_for
from agent.harmony.messages import Conversation
from agent.harmony.parse import parse_completion
from agent.harmony.render import render_conversation_for_completion
from agent.model.generate import Sampler, generate
from agent.model.nano import data, evaluate

STOP = [tk.RETURN, tk.CALL]
DATE = "2026-03-04"


class Allowed:
    """A constraint allowing a fixed set of tokens (None: every token)."""

    def __init__(self, tokens=None, vocab=tk.VOCAB_SIZE):
        self.tokens = None if tokens is None else set(tokens)
        self.vocab = vocab
        self.seen: list[int] = []
        self.relaxed: list[str] = []

    def mask(self):
        if self.tokens is None or self.relaxed:
            return None
        mask = torch.zeros(self.vocab, dtype=torch.bool)
        mask[list(self.tokens)] = True
        return mask

    def advance(self, token: int) -> None:
        self.seen.append(token)

    def relax(self, reason: str) -> None:
        self.relaxed.append(reason)


# ---- the sampler ------------------------------------------------------------------------------

def test_greedy_takes_the_best_allowed_token():
    logits = torch.arange(10.0)
    assert Sampler(temperature=0)(logits, Allowed({3, 5}, 10)) == 5
    assert Sampler(temperature=0)(logits, Allowed(None, 10)) == 9


def test_allowed_tokens_the_model_cannot_produce_are_taken_by_rank():
    logits = torch.tensor([1.0, float("-inf"), 3.0, float("-inf")])  # 1, 3: not in a compact vocab
    lacking = Allowed({1, 3}, 4)
    assert Sampler(temperature=0)(logits, lacking) == 1 and not lacking.relaxed
    assert Sampler(temperature=1.0, seed=0)(logits, Allowed({1, 3}, 4)) in (1, 3)


def test_a_constraint_allowing_nothing_relaxes():
    logits = torch.tensor([1.0, 5.0, 3.0])
    nothing = Allowed(set(), 3)
    assert Sampler(temperature=0)(logits, nothing) == 1 and nothing.relaxed


def test_sampling_draws_from_the_distribution_restricted_to_allowed_tokens():
    probs = torch.tensor([0.5, 0.3, 0.2])
    sampler = Sampler(temperature=1.0, seed=1)
    counts = Counter(sampler(probs.log(), Allowed({1, 2}, 3)) for _ in range(3000))
    assert set(counts) == {1, 2}
    assert abs(counts[1] / 3000 - 0.6) < 0.04  # 0.3 / (0.3 + 0.2)


def test_sampling_with_a_narrow_allowed_set_and_a_cut_distribution():
    logits = torch.zeros(500)
    logits[10] = 5.0
    draws = {Sampler(temperature=1.0, seed=s)(logits, Allowed({7, 42}, 500)) for s in range(40)}
    assert draws == {7, 42}
    # top_k is taken among the allowed tokens
    logits[42] = 1.0
    assert Sampler(temperature=1.0, top_k=1, seed=0)(logits, Allowed({7, 42}, 500)) == 42


def test_a_constraint_allowing_everything_changes_nothing():
    logits = torch.randn(64, 300, generator=torch.Generator().manual_seed(0))
    for settings in ({"temperature": 0}, {"temperature": 0.8, "top_p": 0.9, "top_k": 50}):
        free, allowed = Sampler(seed=5, **settings), Sampler(seed=5, **settings)
        assert [free(row) for row in logits] == [allowed(row, Allowed(None, 300)) for row in logits]


def test_a_constraint_must_have_mask_advance_and_relax(nano_model):
    with pytest.raises(TypeError, match="mask\\(\\), advance\\(token\\) and relax"):
        generate(nano_model, [tk.START], max_tokens=1, constraint=object())


# ---- the runtime: the embedded model -------------------------------------------------------------

@pytest.fixture(scope="module")
def nano_model():
    from agent.model import load, nano
    return load(nano.path())


@pytest.fixture(scope="module")
def function_tasks():
    return evaluate.held_out_tasks({"function": 10}, 2024)


def prompt_for(task) -> list[int]:
    messages = data.prompt_messages(task, DATE, browser=False)
    return render_conversation_for_completion(Conversation.from_messages(messages), "assistant")


def schemas_for(task) -> dict:
    return {"python": None, **{f"functions.{f.name}": f.parameters for f in task.functions}}


def run(model, prompt, constraint=None, **sampling) -> list[int]:
    sampling = {"temperature": 0, **sampling}
    return [g.token for g in generate(model, prompt, max_tokens=300, stop_tokens=STOP,
                                      constraint=constraint, **sampling)]


def fits(arguments: dict, schema: dict) -> bool:
    """The arguments match the schema (jsonschema is the judge)."""
    return jsonschema.Draft202012Validator(schema).is_valid(arguments)


def test_constrained_calls_name_declared_tools_with_fitting_arguments(
        nano_model, function_tasks, harmony_encoding):
    import openai_harmony as oh
    calls = checked = 0
    for task in function_tasks:
        schemas = schemas_for(task)
        tokens = run(nano_model, prompt_for(task), constraint_for(schemas))
        if tokens[-1] != tk.CALL:
            continue
        calls += 1
        parsed = parse_completion(tokens)
        call = parsed.messages[-1]
        assert call.recipient in schemas, (task.user, call.recipient)
        if call.recipient != "python":
            arguments = json.loads(call.text)
            assert fits(arguments, schemas[call.recipient]), (task.user, arguments)
        if not parsed.errors:  # well-formed (the analysis before it too): the oracle agrees
            theirs = harmony_encoding.parse_messages_from_completion_tokens(tokens, oh.Role.ASSISTANT)
            assert (theirs[-1].recipient, theirs[-1].content[0].text) == (call.recipient, call.text)
            checked += 1
    assert calls >= 8 and checked >= 6  # (nearly) every function task gets its call


def test_a_constraint_keeps_completions_that_already_obey_it(nano_model, function_tasks):
    kept = 0
    for task in function_tasks:
        free = run(nano_model, prompt_for(task))
        check = constraint_for(schemas_for(task))
        for token in free:
            check.advance(token)
        if check.error is None:
            assert run(nano_model, prompt_for(task), constraint_for(schemas_for(task))) == free
            kept += 1
    assert 0 < kept < len(function_tasks)  # some free completions broke the rules


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.0, "seed": 7}])
def test_without_a_constraint_generation_is_unchanged(nano_model, function_tasks, sampling):
    prompt = prompt_for(function_tasks[0])
    free = run(nano_model, prompt, **sampling)
    everything = Allowed()
    assert run(nano_model, prompt, everything, **sampling) == free
    assert everything.seen == free  # the constraint was told every token
    backend = LocalBackend(nano_model)
    completed = [g.token for g in backend.complete(prompt, max_tokens=300, stop=STOP, **sampling)]
    assert completed == free


# ---- the agent loop --------------------------------------------------------------------------

def first_calls(backend, tasks, strict: bool) -> list:
    calls = []
    for task in tasks:
        tools = ["python"] + [evaluate.MadeUpFunction(f, task.tool_output) for f in task.functions]
        with Agent(model=backend, tools=tools, effort=task.effort, temperature=0, date=DATE,
                   max_steps=1, strict_tools=strict) as agent:
            result = agent.run(task.user)
            schemas = agent.toolset.argument_schemas()
        if result.tool_calls:
            calls.append((result.tool_calls[0], schemas))
    return calls


def valid(call, schemas) -> bool:
    if call.recipient not in schemas:
        return False
    if schemas[call.recipient] is None:
        return True
    try:
        return fits(json.loads(call.input), schemas[call.recipient])
    except json.JSONDecodeError:
        return False


def test_the_agent_calls_strictly_by_default_and_can_be_told_not_to(nano_model, function_tasks):
    backend = LocalBackend(nano_model)
    strict = first_calls(backend, function_tasks[:7], strict=True)
    assert strict and all(valid(call, schemas) for call, schemas in strict)
    loose = first_calls(backend, function_tasks[:7], strict=False)
    assert not all(valid(call, schemas) for call, schemas in loose)  # what strict prevents
