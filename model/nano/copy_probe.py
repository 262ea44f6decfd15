"""The copy probe: does the embedded model carry a string it has never seen from the request
into a tool call, and from the tool's result into its answer?

    python -m agent.model.nano.evaluate --copy-probe [--model DIR]

Each case draws a random string (1-40 characters: letters of both cases and digits, sometimes
a dash) for the request and another for the tool's result; the user asks about it in one of a
few hand-written phrasings, and one declared function (a name the training data never uses)
answers. Counted through the real `Agent`, greedy: the call carries exactly the string, and
the final answer holds exactly the result. Reported per length band.
"""
from __future__ import annotations

import random
import string
import time

BANDS = ((1, 10), (11, 20), (21, 40))
ASKS = ("Where is consignment {s}?", "Please locate consignment {s}.",
        "locate consignment {s} for me", "Which depot holds consignment {s}?")
ALPHABETS = (string.ascii_letters + string.digits, string.ascii_uppercase + string.digits,
             string.ascii_lowercase + "-" + string.digits)


def random_string(rng: random.Random, length: int) -> str:
    alphabet = rng.choice(ALPHABETS)
    text = "".join(rng.choice(alphabet) for _ in range(length))
    return text.strip("-") or rng.choice(string.ascii_letters)  # no dash at the edges


def cases(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(request string, result string, user message), lengths spread over the bands."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        low, high = BANDS[n % len(BANDS)]
        asked = random_string(rng, rng.randint(low, high))
        result = random_string(rng, rng.randint(low, high))
        out.append((asked, result, rng.choice(ASKS).format(s=asked)))
    return out


def run(model_dir: str, count: int = 60, seed: int = 0) -> dict:
    from agent import Agent, tool
    from agent.backends.local import LocalBackend

    backend = LocalBackend.load(model_dir)
    calls, answers = {b: 0 for b in BANDS}, {b: 0 for b in BANDS}
    totals = {b: 0 for b in BANDS}
    examples = []
    started = time.time()
    for asked, result, user in cases(count, seed):
        seen: list[str] = []

        def locate_consignment(reference: str) -> dict:
            """Find which depot holds a consignment.

            Args:
                reference: the consignment reference
            """
            seen.append(reference)
            return {"depot": result}

        # a step of 600 tokens lets the grammar admit strings of 600 / 8 = 75 characters
        with Agent(model=backend, tools=[tool(locate_consignment)], max_steps=4,
                   max_tokens=1200, max_step_tokens=600, temperature=0) as agent:
            final = agent.run(user).final or ""
        band = next(b for b in BANDS if b[0] <= len(asked) <= b[1])
        totals[band] += 1
        calls[band] += bool(seen) and seen[0] == asked
        answers[band] += result in final
        if len(examples) < 6 and (not seen or seen[0] != asked or result not in final):
            examples.append({"asked": asked, "called": seen[:1], "result": result,
                             "final": final[:120]})

    def rate(wins: dict, band) -> str:
        return f"{wins[band]}/{totals[band]} ({100 * wins[band] / max(totals[band], 1):.0f}%)"

    return {"cases": count, "seed": seed, "seconds": round(time.time() - started),
            "call_exact": {f"{lo}-{hi}": rate(calls, (lo, hi)) for lo, hi in BANDS},
            "answer_exact": {f"{lo}-{hi}": rate(answers, (lo, hi)) for lo, hi in BANDS},
            "misses": examples}
