"""A multi-step script: typed results from one step feed the next.

    python examples/structured_steps.py [--model PATH]

Step 1 extracts the line items of an order as a pydantic object (the agent renders the
response-format section, validates the JSON and asks the model to fix it if needed). The
script computes the total itself, then step 2, in the same session, asks for a short note
to the customer that must mention that total -- checked by `check`, which makes an
effort="auto" agent retry at a higher effort when it fails.
"""
from __future__ import annotations

import argparse

from pydantic import BaseModel

from agent import Agent

ORDER = "2 notebooks at $3.50 each, one pen for $1.25, and 3 erasers at $0.40 each."


class Item(BaseModel):
    name: str
    quantity: int
    unit_price: float


class Order(BaseModel):
    """The line items of an order."""
    items: list[Item]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    args = parser.parse_args(argv)
    with Agent(args.model, effort="auto") as agent:
        session = agent.session()
        step1 = session.run(f"List the line items of this order: {ORDER}", output=Order)
        if step1.output is None:
            print(f"step 1 failed: {step1.reason or step1.errors}")
            return 1
        order: Order = step1.output
        total = sum(item.quantity * item.unit_price for item in order.items)
        for item in order.items:
            print(f"{item.quantity} x {item.name} @ {item.unit_price:.2f}")
        print(f"total: {total:.2f}")
        step2 = session.run(f"Write one sentence to the customer confirming the order total of ${total:.2f}.",
                            check=lambda r: f"{total:.2f}" in r.final or f"the note must mention {total:.2f}")
        print(f"note ({step2.effort} effort): {step2.final}")
        return 0 if step2.ok and f"{total:.2f}" in step2.final else 1


if __name__ == "__main__":
    raise SystemExit(main())
