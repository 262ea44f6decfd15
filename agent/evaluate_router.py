"""Accuracy and confusion matrix of a reasoning-effort router on the labeled task set.

    python -m agent.evaluate_router [--data tests/data/router_tasks.jsonl] [--split all|dev|heldout]
                                    [--router module:Class] [--errors]

The set (hand-labeled low/medium/high) has a `dev` split the heuristic was tuned on and a
`heldout` split it was not.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from agent.router import EFFORTS, HeuristicRouter, Router

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "router_tasks.jsonl"


def load_tasks(path: Path, split: str = "all") -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if split == "all" or r.get("split") == split]


def evaluate(router: Router, rows: list[dict]) -> dict:
    confusion = {want: {got: 0 for got in EFFORTS} for want in EFFORTS}
    misses = []
    for row in rows:
        decision = router.choose(row["task"])
        confusion[row["effort"]][decision.effort] += 1
        if decision.effort != row["effort"]:
            misses.append((row, decision))
    correct = sum(confusion[e][e] for e in EFFORTS)
    return {"n": len(rows), "correct": correct, "accuracy": correct / max(len(rows), 1),
            "confusion": confusion, "misses": misses}


def format_report(name: str, report: dict) -> str:
    lines = [f"{name}: accuracy {report['accuracy']:.1%} ({report['correct']}/{report['n']})",
             "  expected \\ predicted   " + "".join(f"{e:>8}" for e in EFFORTS)]
    for want in EFFORTS:
        lines.append(f"  {want:<22}" + "".join(f"{report['confusion'][want][got]:>8}" for got in EFFORTS))
    return "\n".join(lines)


def _load_router(spec: str | None) -> Router:
    if not spec:
        return HeuristicRouter()
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.evaluate_router", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=("all", "dev", "heldout", "each"), default="each")
    parser.add_argument("--router", help="module:Class of a Router to evaluate (default: the heuristic)")
    parser.add_argument("--errors", action="store_true", help="list the misrouted tasks")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"error: no labeled task file at {args.data}", file=sys.stderr)
        return 2
    router = _load_router(args.router)
    splits = ("all", "dev", "heldout") if args.split == "each" else (args.split,)
    for split in splits:
        report = evaluate(router, load_tasks(args.data, split))
        print(format_report(split, report))
        if args.errors and split == splits[0]:
            for row, decision in report["misses"]:
                print(f"  want {row['effort']:<6} got {decision.effort:<6} {row['task'][:70]!r}  [{decision.reason}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
