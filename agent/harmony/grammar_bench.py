"""What the turn grammar costs per generated token: `python -m agent.harmony.grammar_bench`.

Follows realistic completions (reasoning, then a call with nested JSON arguments; a final
answer under a response format) token by token and times the mask of all 201,088 ids that
the sampler applies before each pick (llguidance's mask plus its unpacking to a bool tensor).
Prints the tokenizer build time, the grammar compile time and the median / p99 per token.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from . import tokenizer as tk
from .grammar import constraint_for, lltokenizer

ORDER = {"type": "object", "additionalProperties": False,
         "required": ["customer_id", "items"],
         "properties": {"customer_id": {"type": "string"},
                        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                        "shipping": {"enum": ["standard", "express"]},
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
         "$defs": {"item": {"type": "object", "required": ["sku", "qty"],
                            "properties": {"sku": {"type": "string"},
                                           "qty": {"type": "integer", "minimum": 1}}}}}
TOOLS = {"functions.place_order": ORDER, "python": None,
         "functions.get_weather": {"type": "object", "properties": {"city": {"type": "string"}},
                                   "required": ["city"]}}
CALL = ("<|channel|>analysis<|message|>The user wants two mugs and a teapot shipped express. "
        "I will place the order with the customer's id.<|end|><|start|>assistant"
        "<|channel|>commentary to=functions.place_order <|constrain|>json<|message|>"
        + json.dumps({"customer_id": "C-1042", "items": [{"sku": "MUG-01", "qty": 2},
                                                          {"sku": "TEA-7", "qty": 1}],
                      "shipping": "express", "note": None}) + "<|call|>")
ANSWER = {"type": "object", "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
          "required": ["value", "unit"]}
FINAL = ('<|channel|>analysis<|message|>10 kg is 22.0462 lb.<|end|><|start|>assistant'
         '<|channel|>final<|message|>{"value": 22.0462, "unit": "lb"}<|return|>')


def per_token(text: str, **grammar) -> tuple[float, list[float]]:
    """(compile seconds, mask seconds for each token of `text`)."""
    started = time.perf_counter()
    constraint = constraint_for(**grammar)
    compiled = time.perf_counter() - started
    times = []
    for token in tk.get_encoding().encode(text, allowed_special="all"):
        started = time.perf_counter()
        mask = constraint.mask()
        times.append(time.perf_counter() - started)
        assert mask is not None and bool(mask[token]), tk.decode([token])
        constraint.advance(token)
    assert constraint.error is None
    return compiled, times


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    del args
    started = time.perf_counter()
    lltokenizer()
    print(f"tokenizer: {time.perf_counter() - started:.2f} s for {tk.VOCAB_SIZE} ids")
    cases = [("tool call (nested JSON Schema)", CALL, {"recipients": TOOLS}),
             ("final under a response format", FINAL, {"recipients": TOOLS,
                                                        "response_format": ANSWER})]
    for name, text, grammar in cases:
        samples, compiled = [], []
        for _ in range(5):
            seconds, times = per_token(text, **grammar)
            compiled.append(seconds)
            samples += times
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
        print(f"{name}: compile {statistics.median(compiled) * 1e3:.1f} ms; per token "
              f"median {statistics.median(samples) * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us "
              f"({len(samples)} tokens)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
