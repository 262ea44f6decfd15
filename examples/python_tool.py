"""The python tool: the model runs code in a sandboxed, stateful notebook while it thinks.

    python examples/python_tool.py ["task"] [--model PATH]

Events stream as they happen: the code the model sends, the output it reads back, then the
answer. State persists between calls within the run (variables, imports, files).
"""
from __future__ import annotations

import argparse

from agent import Agent
from agent.events import Done, FinalDelta, ToolCallStarted, ToolResultReceived


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", nargs="?", default="What is the 20th Fibonacci number? Use python.")
    parser.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    args = parser.parse_args(argv)
    result = None
    with Agent(args.model, tools=["python"], effort="low") as agent:
        for event in agent.stream(args.task):
            if isinstance(event, ToolCallStarted):
                print(f">>> {event.input}")
            elif isinstance(event, ToolResultReceived):
                print(event.output.rstrip())
            elif isinstance(event, FinalDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, Done):
                result = event.result
    print()
    return 0 if result is not None and result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
