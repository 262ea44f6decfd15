"""The hand-written evaluation (tests/data/nano_eval.jsonl + nano_eval_tools.py): its tasks
are well-formed, and its judge, run through the real agent loop, the real sandboxed python
and `@tool` functions (a scripted backend standing in for the model), accepts right answers
and names what is wrong in wrong ones."""
from __future__ import annotations

import inspect
import json
from collections import Counter

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.model.nano import handwritten as hw

TASKS = hw.load_tasks()
FUNCTIONS = hw.load_functions()
BY_ID = {t["id"]: t for t in TASKS}


def _turns(task):
    return task.get("turns") or [task]


def test_the_evaluation_is_large_and_covers_every_kind():
    counts = Counter(t["category"] for t in TASKS)
    assert len(TASKS) >= 200
    assert sum(counts[c] for c in hw.PYTHON_KINDS) >= 100
    assert counts["function"] >= 60 and counts["direct"] >= 20 and counts["multi_turn"] >= 10
    assert counts["readme"] == 1
    used = {n for t in TASKS for n in t.get("tools", []) if n != "python"}
    assert len(used) >= 60 and used <= set(FUNCTIONS)
    assert len({t["id"] for t in TASKS}) == len(TASKS)


def test_expected_calls_fit_the_declared_signatures():
    for task in TASKS:
        for turn in _turns(task):
            if turn["category"] != "function":
                continue
            name = turn["call"]["name"]
            assert name in task["tools"], task["id"]
            inspect.signature(FUNCTIONS[name]).bind(**turn["call"]["arguments"])
            FUNCTIONS[name](**turn["call"]["arguments"])  # the canned result is computable
            result = json.dumps(FUNCTIONS[name](**turn["call"]["arguments"]))
            # the answer must be something the function really returns
            assert any(a.lower() in result.lower() or a.lower() in ("unavailable", "taken",
                       "not available", "false", "cancelled") for a in turn["answer"]), task["id"]


@pytest.mark.parametrize("text, answer, kind, expected", [
    ("The result is **7006652**.", 7006652, "arithmetic", True),
    ("It is 7,006,652", 7006652, "arithmetic", True),
    ("7006653", 7006652, "arithmetic", False),
    ("2572.0", 2572, "arithmetic", True),
    ("10 kg is 22.046 pounds.", 22.046226, "unit", True),
    ("10 kg is 22.2 pounds.", 22.046226, "unit", False),
    ("nommisrep", "nommisrep", "string", True),
    ("yellowimmon", "nommisrep", "string", False),
    ("The answer is:\nZ", "Z", "string", True),
    ("Zebra", "Z", "string", False),
])
def test_answers_are_read_with_the_kinds_tolerance(text, answer, kind, expected):
    assert hw.holds_answer(text, answer, kind) is expected


def test_direct_answers_count_whole_words():
    assert hw.mentions("Hi! How can I help?", "hi") and not hw.mentions("This is it.", "hi")
    assert not hw.mentions("in 16 minutes", "6") and hw.mentions("HX-30317 booked", "hx-30317")


def run(task_id, completions, **override):
    task = {**BY_ID[task_id], "effort": "low", **override}   # low: no escalation retries
    return hw.run_task(task, ScriptedBackend(completions), FUNCTIONS)


def call(recipient, arguments, channel="commentary"):
    kind = " <|constrain|>json" if channel == "commentary" else ""
    return f"<|channel|>{channel} to={recipient}{kind}<|message|>{arguments}<|call|>"


def final(text):
    return f"<|channel|>final<|message|>{text}<|return|>"


def test_a_right_function_call_passes_and_wrong_values_fail():
    ok, why, _ = run("fun01", [call("functions.get_stock_quote", '{"symbol": "AAPL"}'),
                               final("AAPL trades at 187.44 USD.")])
    assert ok, why
    ok, why, _ = run("fun01", [call("functions.get_stock_quote", '{"symbol": "APPL"}'),
                               final("AAPL trades at 187.44 USD.")])
    assert not ok and "symbol='APPL'" in why
    ok, why, _ = run("fun01", [call("functions.get_stock_quote", '{"symbol": "AAPL"}'),
                               final("It trades at 190 USD.")])
    assert not ok and "lacks" in why
    # an optional argument left out is fine, one passed with another value is not
    ok, why, _ = run("fun13", [call("functions.track_package", '{"tracking_number": "1Z999AA10123456784"}'),
                               final("It is at the Memphis hub.")])
    assert ok, why
    ok, why, _ = run("fun13", [call("functions.track_package",
                                    '{"tracking_number": "1Z999AA10123456784", "carrier": "dhl"}'),
                               final("It is at the Memphis hub.")])
    assert not ok and "carrier" in why


def test_python_tasks_need_the_real_output_in_the_answer():
    ok, why, _ = run("ari01", [call("python", "print(1234 * 5678)", "analysis"),
                               final("1234 * 5678 = 7006652")])
    assert ok, why
    ok, why, _ = run("ari01", [final("1234 * 5678 = 7006652")])
    assert not ok and why == "no successful python call"
    ok, why, _ = run("ari01", [call("python", "print(1234 * 5679)", "analysis"),
                               final("7006652")])
    assert not ok and "python printed '7007886'" in why


def test_direct_answers_use_no_tool_and_sessions_need_every_turn():
    ok, why, _ = run("dir06", [final("Tokyo is the capital of Japan.")])
    assert ok, why
    ok, why, _ = run("dir06", [call("python", "print('Tokyo')", "analysis"), final("Tokyo")])
    assert not ok and "direct answer" in why
    session = [call("python", "print(45 + 78)", "analysis"), final("123"),
               call("python", "print(45 + 78)", "analysis"), final("123")]   # repeats turn 1
    ok, why, _ = run("mul02", session)
    assert not ok and why.startswith("turn 2: python printed '123'")
