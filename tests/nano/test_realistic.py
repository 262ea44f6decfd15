"""The realistic training tasks (realistic.py) and multi-turn transcripts (data.py): real
python output, values copied from the request, names kept apart from the hand-written
evaluation, and session transcripts that are what the agent loop really shows the model."""
from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agent.harmony import tokenizer as tk
from agent.harmony.messages import Conversation
from agent.model.nano import data, realistic
from agent.model.nano.handwritten import load_functions, load_tasks
from agent.model.nano.tasks import Task

ROOT = Path(__file__).resolve().parents[2]


def example_tool_names() -> set[str]:
    """Functions decorated with @tool in examples/."""
    names = set()
    for path in (ROOT / "examples").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    getattr(d, "id", None) == "tool" for d in node.decorator_list):
                names.add(node.name)
    return names


def test_held_out_names_are_the_evaluation_and_example_tools():
    assert realistic.HELD_OUT_NAMES == set(load_functions()) | example_tool_names()


def test_generator_never_declares_a_held_out_name_nor_asks_an_evaluation_question():
    rng = random.Random(21)
    asked = {t["user"] for t in load_tasks() if "user" in t}
    asked |= {turn["user"] for t in load_tasks() for turn in t.get("turns", [])}
    declared, users = set(), set()
    for _ in range(3000):
        task = realistic.random_task(rng)
        declared |= {f.name for f in task.functions}
        users.add(task.user)
    assert len(declared) > 400          # a large space of names, not a fixed list
    assert not declared & realistic.HELD_OUT_NAMES
    # one- and two-word greetings ("Hello!") are everyone's; longer requests never coincide
    assert not {u for u in users & asked if len(u.split()) > 2}


@pytest.mark.parametrize("category", ["arithmetic", "unit", "string"])
def test_python_answers_are_what_python_prints(category):
    rng = random.Random(7)
    for _ in range(12):
        task = realistic.random_task(rng, category=category)
        printed = subprocess.run([sys.executable, "-c", task.arguments], capture_output=True,
                                 text=True, check=True).stdout.strip()
        assert task.tool_output == printed == task.answer
        assert task.answer in task.final


def test_unit_factors_are_right():
    rng = random.Random(3)
    seen = 0
    while seen < 3:
        task = realistic.unit_task(rng, "low")
        if "1.609344" in task.arguments and "*" in task.arguments:   # miles -> km, mph -> km/h
            miles = float(task.arguments.split("(")[-1].split("*")[0].replace("x = ", "") or 0) \
                if "x =" not in task.arguments else float(task.arguments.split("\n")[0][4:])
            assert abs(float(task.answer) - round(miles * 1.609344, 3)) < 1e-9
            seen += 1


def test_function_calls_copy_values_from_the_request():
    rng = random.Random(5)
    for _ in range(60):
        task = realistic.function_task(rng, rng.choice(("low", "medium", "high")))
        name = task.recipient.removeprefix("functions.")
        spec = next(f for f in task.functions if f.name == name)
        args = json.loads(task.arguments)
        assert set(spec.parameters["required"]) <= set(args) <= set(spec.parameters["properties"])
        for value in args.values():
            shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
            assert shown in task.user, (shown, task.user)
        assert task.answer in task.tool_output and task.answer in task.final
        assert all("_" in f.name and f.name.replace("_", "").isalpha() for f in task.functions)


def test_session_transcripts_match_openai_harmony(harmony_encoding):
    from openai_harmony import Conversation as OracleConversation
    from openai_harmony import RenderConversationConfig

    rng = random.Random(9)
    for _ in range(15):
        history = [realistic.random_task(rng) for _ in range(2)]
        task = realistic.random_task(rng)
        prefix, tokens, mask = data.render_example(task, "2026-03-04", False, None, True,
                                                   history, keep_analysis=True)
        declared = [f for t in [*history, task] for f in t.functions]
        merged = Task(task.category, task.effort, task.user,
                      functions=list({f.name: f for f in declared}.values()))
        messages = data.prompt_messages(merged, "2026-03-04", False, None)[:-1]
        for turn in [*history, task]:
            messages += data.prompt_messages(turn, None, False, None)[-1:] + data.assistant_messages(turn)
        oracle = harmony_encoding.render_conversation_for_training(
            OracleConversation.from_json(Conversation.from_messages(messages).to_json()),
            config=RenderConversationConfig(auto_drop_analysis=False))
        assert prefix + tokens == oracle
        learned = tk.decode([t for t, m in zip(tokens, mask) if m])
        assert task.final in learned and all(t.final not in learned for t in history
                                             if t.final not in task.final)


def _turn(user, code, out, final):
    return Task("arithmetic", "low", user, recipient="python", arguments=code, tool_output=out,
                answer=out, analysis=["Use python."], final=final)


def test_session_context_is_what_the_loop_sends():
    """Turn 2 of a session: the training context is token for token the loop's prompt, at
    its first step (earlier analysis dropped) and after its tool call (kept)."""
    from agent import Agent
    from agent.backends.scripted import ScriptedBackend

    first = _turn("What is 2 + 3?", "print(2 + 3)", "5", "It is 5.")
    second = _turn("and 7 * 6?", "print(7 * 6)", "42", "It is 42.")
    think = "<|channel|>analysis<|message|>Use python.<|end|><|start|>assistant"
    completions = []
    for turn in (first, second):
        completions += [think + f"<|channel|>analysis to=python<|message|>{turn.arguments}<|call|>",
                        f"<|channel|>final<|message|>{turn.final}<|return|>"]
    backend = ScriptedBackend(completions)
    with Agent(backend, tools=["python"], effort="low", date="2026-03-04") as agent:
        session = agent.session()
        assert session.run(first.user).final == "It is 5."
        assert session.run(second.user).final == "It is 42."
    for step, keep in ((2, False), (3, True)):
        prefix, tokens, mask = data.render_example(second, "2026-03-04", False, None, "sandbox",
                                                   [first], keep_analysis=keep)
        full = prefix + tokens
        prompt = backend.prompts[step]
        assert full[:len(prompt)] == prompt
        # ... and ends where the model starts writing (the loss starts)
        end = len(prompt) - len(prefix)
        assert mask[end] and not mask[end - 1]


def test_values_from_large_random_spaces_are_copied_exactly():
    """A share of the values is random (no two alike): each one the request holds reaches the
    call's arguments, and the result's headline reaches the answer, character for character."""
    rng = random.Random(9)
    wild = []
    for _ in range(300):
        task = realistic.function_task(rng, "low")
        args = json.loads(task.arguments)
        for value in args.values():
            if isinstance(value, str) and value in task.user:
                wild.append(value)
        assert task.answer in task.tool_output and task.answer in task.final
    assert len(set(wild)) > 0.9 * len(wild) > 100
    assert any(not value.isascii() for value in wild) and any(len(value) > 20 for value in wild)


def test_follow_up_turns_need_the_earlier_turn():
    rng = random.Random(4)
    kinds = set()
    for _ in range(40):
        first, last = realistic.follow_up(rng, "medium")
        if last.recipient == "python":  # "add 6 to that": the code starts from the last result
            assert last.arguments.startswith(f"print({first.tool_output} ")
            assert last.answer == tasks_run(last.arguments)
            kinds.add("arithmetic")
        else:  # "what is my name?": the name given before, in the answer
            assert last.answer in first.user and last.answer in last.final
            assert last.answer not in last.user
            kinds.add("name")
    assert kinds == {"arithmetic", "name"}


def tasks_run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()
