"""A custom tool: a typed Python function the model can call.

    python examples/custom_tool.py ["How much is 120 EUR in USD?"] [--model PATH]

`@tool` turns the signature and docstring into the JSON schema the model sees in its
developer message; the agent loop validates the model's arguments and feeds the return
value (or the error) back to it.
"""
from __future__ import annotations

import argparse

from agent import Agent, tool

RATES = {"EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "USD": 1.0}


@tool
def convert_currency(amount: float, source: str, target: str) -> str:
    """Convert an amount of money between currencies.

    Args:
        amount: how much money, in the source currency
        source: ISO code of the currency to convert from, e.g. EUR
        target: ISO code of the currency to convert to, e.g. USD
    """
    for code in (source, target):
        if code.upper() not in RATES:
            raise ValueError(f"unknown currency {code!r}; known: {', '.join(RATES)}")
    usd = amount * RATES[source.upper()]
    return f"{amount:g} {source.upper()} = {usd / RATES[target.upper()]:.2f} {target.upper()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", nargs="?", default="How much is 120 EUR in USD?")
    parser.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    args = parser.parse_args(argv)
    with Agent(args.model, tools=[convert_currency], effort="low") as agent:
        result = agent.run(args.task)
    for call in result.tool_calls:
        print(f"{call.recipient}({call.input}) -> {call.output}")
    print(result.final)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
