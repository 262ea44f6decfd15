"""The hand-written evaluation: tasks a user would type, never produced by the generator.

    python -m agent.model.nano.evaluate --handwritten [--model DIR] [-v]

Tasks are tests/data/nano_eval.jsonl; the developer functions are the typed, documented
Python functions of tests/data/nano_eval_tools.py, turned into tools by `@tool`. Each task
runs through `agent.Agent` as a user would run it (effort "auto", the model's own greedy
decoding, strict tool calls, the sandboxed python tool). Success:
  arithmetic / unit / string: a python call whose real output holds the answer (numbers
    within 0.1% for units, exact otherwise), and the final answer holds it too;
  function: the first tool call is the expected function with the expected argument values
    (strings compared without case and spaces; omitted optional arguments are fine), and the
    final answer holds one of the expected result strings;
  direct: no tool call, and the final answer holds one of the expected words;
  (answers count as whole words, without case for functions and direct answers);
  multi_turn: one session, every turn right; readme: the README's Python API example
    (separate runs of one agent), every run right.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tests" / "data" / "nano_eval.jsonl"
TOOLS = ROOT / "tests" / "data" / "nano_eval_tools.py"
PYTHON_KINDS = ("arithmetic", "unit", "string")
CATEGORIES = PYTHON_KINDS + ("function", "direct", "multi_turn", "readme")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def load_tasks(path: Path = TASKS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_functions(path: Path = TOOLS) -> dict:
    """name -> plain Python function of the tools module."""
    spec = importlib.util.spec_from_file_location("nano_eval_tools", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: fn for name, fn in vars(module).items()
            if inspect.isfunction(fn) and fn.__module__ == module.__name__}


def _numbers(text: str) -> list[float]:
    out = []
    for match in NUMBER.findall(text):
        try:
            out.append(float(match.replace(",", "")))
        except ValueError:
            pass
    return out


def holds_answer(text: str, answer, kind: str) -> bool:
    """Does `text` state `answer` (a number, within the kind's tolerance, or a string)?"""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        rel = 1e-3 if kind == "unit" else 1e-9
        return any(abs(x - answer) <= max(rel * abs(answer), 1e-6 if kind != "unit" else 0.01)
                   for x in _numbers(text))
    return mentions(text, str(answer), ignore_case=False)


def mentions(text: str, phrase: str, ignore_case: bool = True) -> bool:
    """`phrase` in `text` as a whole word ("hi" is not in "this"; "16" does not hold "6")."""
    pattern = r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
    return re.search(pattern, text, re.IGNORECASE if ignore_case else 0) is not None


def _norm(value):
    if isinstance(value, str):
        return re.sub(r"\s+", "", value).lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def arguments_match(given: dict, expected: dict, fn) -> tuple[bool, str]:
    defaults = {name: p.default for name, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}
    for key, value in expected.items():
        if key not in given:
            return False, f"missing argument {key!r}"
        if _norm(given[key]) != _norm(value):
            return False, f"{key}={given[key]!r}, expected {value!r}"
    for key, value in given.items():
        if key not in expected and not (key in defaults and _norm(value) == _norm(defaults[key])):
            return False, f"unexpected argument {key}={value!r}"
    return True, ""


def judge_turn(turn: dict, result, functions: dict) -> tuple[bool, str]:
    final = result.final or ""
    calls = list(result.tool_calls)
    kind = turn["category"]
    if kind in PYTHON_KINDS:
        outputs = [c.output for c in calls if c.recipient == "python" and not c.error]
        if not outputs:
            return False, "no successful python call"
        if not any(holds_answer(o, turn["answer"], kind) for o in outputs):
            return False, f"python printed {outputs[-1].strip()[:80]!r}, expected {turn['answer']!r}"
        if not holds_answer(final, turn["answer"], kind):
            return False, f"final {final[:100]!r} lacks {turn['answer']!r}"
        return True, ""
    if kind == "function":
        call = turn["call"]
        if not calls:
            return False, "no tool call"
        first = calls[0]
        if first.recipient != f"functions.{call['name']}":
            return False, f"called {first.recipient}, expected functions.{call['name']}"
        try:
            given = json.loads(first.input)
        except json.JSONDecodeError:
            return False, f"arguments are not JSON: {first.input[:80]!r}"
        if not isinstance(given, dict):
            return False, f"arguments are not an object: {first.input[:80]!r}"
        ok, why = arguments_match(given, call["arguments"], functions[call["name"]])
        if not ok:
            return False, why
    elif calls:
        return False, f"called {calls[0].recipient} for a direct answer"
    if not any(mentions(final, a) for a in turn["answer"]):
        return False, f"final {final[:100]!r} lacks any of {turn['answer']}"
    return True, ""


def _tools_for(task: dict, functions: dict) -> list:
    from agent import tool
    names = task.get("tools") or []
    tools = [tool(functions[n]) for n in names if n != "python"]
    return tools + ["python"]


def run_task(task: dict, backend, functions: dict, max_tokens: int = 1500) -> tuple[bool, str, float]:
    """-> (success, why not, seconds)."""
    from agent import Agent
    started = time.time()
    turns = task.get("turns") or [task]
    with Agent(model=backend, tools=_tools_for(task, functions), effort=task.get("effort", "auto"),
               max_steps=6, max_tokens=max_tokens, max_step_tokens=max_tokens // 2) as agent:
        runner = agent.session() if task["category"] == "multi_turn" else agent
        for n, turn in enumerate(turns):
            result = runner.run(turn["user"])
            ok, why = judge_turn(turn, result, functions)
            if not ok:
                prefix = f"turn {n + 1}: " if len(turns) > 1 else ""
                return False, prefix + why, time.time() - started
    return True, "", time.time() - started


def evaluate(model_dir: str, verbose: bool = False, only: set[str] | None = None,
             lookahead: int | None = None) -> dict:
    from agent.backends.local import LocalBackend
    tasks = [t for t in load_tasks() if not only or t["category"] in only]
    functions = load_functions()
    backend = LocalBackend.load(model_dir)
    if lookahead is not None:  # drafts checked per pass (agent.model.lookup); 0: none
        backend.model.lookahead = lookahead
    wins, totals, failures = Counter(), Counter(), []
    started = time.time()
    for task in tasks:
        ok, why, seconds = run_task(task, backend, functions)
        totals[task["category"]] += 1
        wins[task["category"]] += ok
        if not ok:
            failures.append(f"{task['id']} {task.get('user') or task['turns'][0]['user']!r}: {why}")
        if verbose:
            line = f"FAIL {failures[-1]}" if not ok else f"ok   {task['id']}"
            print(f"{line} ({seconds:.1f}s)", file=sys.stderr, flush=True)
    python = sum(wins[c] for c in PYTHON_KINDS), sum(totals[c] for c in PYTHON_KINDS)
    return {
        "tasks": len(tasks), "seconds": round(time.time() - started),
        "lookahead": backend.model.lookahead,
        "success": {c: _rate(wins[c], totals[c]) for c in CATEGORIES if totals[c]},
        "python_tasks": _rate(*python),
        "all": _rate(sum(wins.values()), sum(totals.values())),
        "failures": failures,
    }


def _rate(wins: int, total: int) -> str:
    return f"{wins}/{total} ({100 * wins / max(total, 1):.1f}%)"
