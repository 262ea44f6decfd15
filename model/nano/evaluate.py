"""Evaluate the nano model on held-out tasks through the real agent loop and real tools.

    python -m agent.model.nano.evaluate [--model DIR] [--tasks 350] [--seed 1000]
                                        [--no-strict-tools]
    python -m agent.model.nano.evaluate --handwritten    # tests/data/nano_eval.jsonl
    python -m agent.model.nano.evaluate --copy-probe     # random strings (copy_probe.py)

The tasks come from tasks.py with a seed the trainer never uses. Each one runs in
`agent.Agent` (the embedded model via the local backend, the sandboxed `python` tool, and
the task's made-up developer functions, which record their calls and return the task's
result) at the task's reasoning effort, with strict (grammar-constrained) tool calls unless
--no-strict-tools. Success means:
  arithmetic / unit / string: a `python` call whose real output is the expected value, and
    the final answer contains it;
  function: the first call goes to the right `functions.NAME` with exactly the expected JSON
    arguments, and the final answer contains the function's result;
  direct: the final answer contains the expected text.
Printed: success per category, parse problems (recovered / unrecoverable), median analysis
length (tokens) per effort.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter, defaultdict

from agent.harmony.grammar import closed
from agent.harmony.messages import ToolDescription
from agent.harmony.tokenizer import encode_text
from agent.model.nano import path as nano_path
from agent.model.nano.tasks import CATEGORIES, EFFORTS, FunctionSpec, Task, random_task
from agent.tools.base import Tool, ToolResult

DEFAULT_COUNTS = {"arithmetic": 70, "unit": 60, "string": 60, "function": 90, "direct": 30}


class MadeUpFunction(Tool):
    """A developer function from a task: returns the task's canned result."""
    namespace = "functions"

    def __init__(self, spec: FunctionSpec, output: str):
        self.name, self.description, self.spec, self.output = spec.name, spec.description, spec, output

    async def call(self, recipient: str, arguments: str) -> ToolResult:
        return ToolResult(self.output)

    def tool_description(self) -> ToolDescription:
        # closed, as `@tool` declares a Python function's parameters: a schema that admits
        # other keys lets a looping model write an endless key name (llguidance bounds
        # neither propertyNames nor maxProperties with optional keys)
        return ToolDescription.new(self.spec.name, self.spec.description,
                                   parameters=closed(self.spec.parameters))


def held_out_tasks(counts: dict[str, int], seed: int) -> list[Task]:
    """Tasks per category, efforts in turn (the runtime spells any text in the model's
    closed vocabulary, so every task can be read and written)."""
    tasks = []
    for category in CATEGORIES:
        rng = random.Random(f"{seed}:{category}")  # the same tasks whatever else is asked for
        for i in range(counts.get(category, 0)):
            tasks.append(random_task(rng, category=category, effort=EFFORTS[i % 3],
                                     with_functions=None if category != "function" else True))
    return tasks


def analysis_tokens(result) -> int:
    """Tokens of the turn's analysis messages (not the code sent to python)."""
    texts = [c.get("text", "") for m in result.messages
             if m.get("role") == "assistant" and m.get("channel") == "analysis"
             and not m.get("recipient") for c in m.get("content", [])]
    return sum(len(encode_text(t)) for t in texts)


def judge(task: Task, result) -> tuple[bool, str]:
    """(success, why not) for one task's Result."""
    final = result.final or ""
    calls = result.tool_calls
    if task.category in ("arithmetic", "unit", "string"):
        python = [c for c in calls if c.recipient == "python" and not c.error]
        if not python:
            return False, "no successful python call"
        if not any(c.output.strip() == task.answer for c in python):
            return False, f"python printed {python[-1].output.strip()!r}, expected {task.answer!r}"
    elif task.category == "function":
        if not calls:
            return False, "no tool call"
        first = calls[0]
        if first.recipient != task.recipient:
            return False, f"called {first.recipient}, expected {task.recipient}"
        try:
            args = json.loads(first.input)
        except json.JSONDecodeError:
            return False, f"arguments are not JSON: {first.input!r}"
        if args != task.call_args or any(type(args[k]) is not type(v)
                                         for k, v in task.call_args.items() if k in args):
            return False, f"arguments {first.input}, expected {json.dumps(task.call_args)}"
    if task.answer not in final:
        return False, f"final {final!r} lacks {task.answer!r}"
    return True, ""


def evaluate(model_dir: str, counts: dict[str, int], seed: int, temperature: float,
             verbose: bool = False, max_tokens: int = 1200, strict_tools: bool = True) -> dict:
    from agent import Agent
    from agent.backends.local import LocalBackend

    tasks = held_out_tasks(counts, seed)
    backend = LocalBackend.load(model_dir)
    wins, totals = Counter(), Counter()
    parse_recovered, unrecoverable = 0, 0
    analysis = defaultdict(list)
    failures, stops = [], Counter()
    started = time.time()
    for i, task in enumerate(tasks):
        tools = ["python"] + [MadeUpFunction(f, task.tool_output if f.name == (task.recipient or "")
                                             .removeprefix("functions.") else '{"ok": true}')
                              for f in task.functions]
        with Agent(model=backend, tools=tools, effort=task.effort, temperature=temperature,
                   seed=seed + i, max_steps=6, max_tokens=max_tokens,
                   max_step_tokens=max_tokens // 2, strict_tools=strict_tools) as agent:
            result = agent.run(task.user)
        ok, why = judge(task, result)
        stops[result.stop_reason] += 1
        totals[task.category] += 1
        wins[task.category] += ok
        # parse problems: output the parser repaired, or sent back to the model to redo;
        # unrecoverable when the task then ended without a final answer
        repaired = sum("(repaired)" in e for e in result.errors)
        redone = sum(m.get("name") == "parser" for m in result.messages)
        if repaired or redone:
            if result.final:
                parse_recovered += 1
            else:
                unrecoverable += 1
        analysis[task.effort].append(analysis_tokens(result))
        if not ok:
            failures.append((task.category, task.user, why))
            if verbose:
                print(f"FAIL [{task.category}/{task.effort}] {task.user!r}: {why}", file=sys.stderr)
    report = {
        "tasks": len(tasks), "temperature": temperature,
        "strict_tools": strict_tools,
        "seconds": round(time.time() - started),
        "success": {c: f"{wins[c]}/{totals[c]} ({100 * wins[c] / totals[c]:.1f}%)"
                    for c in CATEGORIES if totals[c]},
        "python_tasks": _rate(sum(wins[c] for c in ("arithmetic", "unit", "string")),
                              sum(totals[c] for c in ("arithmetic", "unit", "string"))),
        "tasks_with_parse_problems_recovered": parse_recovered,
        "tasks_with_parse_problems_unrecoverable": unrecoverable,
        "stop_reasons": dict(stops),
        "median_analysis_tokens": {e: statistics.median(analysis[e]) for e in EFFORTS
                                   if analysis[e]},
        "failures": failures[:20],
    }
    return report


def _rate(wins: int, total: int) -> str:
    return f"{wins}/{total} ({100 * wins / max(total, 1):.1f}%)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(nano_path()))
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the task counts")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature (1.0 = the agent's default)")
    p.add_argument("--only", help="comma-separated categories (run parts in parallel)")
    p.add_argument("--no-strict-tools", action="store_true",
                   help="let tool calls name any recipient and send any arguments")
    p.add_argument("--handwritten", action="store_true",
                   help="the hand-written tasks of tests/data/nano_eval.jsonl (handwritten.py)")
    p.add_argument("--copy-probe", action="store_true",
                   help="random strings through a tool call and back (copy_probe.py)")
    p.add_argument("--count", type=int, default=60, help="--copy-probe cases")
    p.add_argument("--lookahead", type=int, default=None,
                   help="--handwritten: drafted tokens checked per pass (0: none; default: "
                        "the runtime's)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.copy_probe:
        from agent.model.nano import copy_probe
        print(json.dumps(copy_probe.run(args.model, args.count, args.seed), indent=2,
                         ensure_ascii=False))
        return 0
    if args.handwritten:
        from agent.model.nano import handwritten
        only = set(args.only.split(",")) if args.only else None
        print(json.dumps(handwritten.evaluate(args.model, args.verbose, only, args.lookahead),
                         indent=2, ensure_ascii=False))
        return 0
    counts = {c: max(1, round(n * args.scale)) for c, n in DEFAULT_COUNTS.items()
              if not args.only or c in args.only.split(",")}
    report = evaluate(args.model, counts, args.seed, args.temperature, args.verbose,
                      strict_tools=not args.no_strict_tools)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
