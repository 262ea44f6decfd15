"""The effort router: heuristic decisions, the labeled task set, and the evaluation script."""
from __future__ import annotations

import subprocess
import sys

import pytest

from agent.evaluate_router import DEFAULT_DATA, evaluate, load_tasks
from agent.router import EFFORTS, FixedRouter, HeuristicRouter, Router, router_for


@pytest.mark.parametrize("task, effort", [
    ("Hi!", "low"),
    ("Quick question: what's the capital of Italy?", "low"),
    ("Explain how DNS resolution works.", "medium"),
    ("Search the news for today's headlines.", "medium"),          # tools put a floor at medium
    ("Prove that the sum of two even numbers is even.", "high"),
    ("Think carefully: which is larger, 9.11 or 9.9?", "high"),
])
def test_heuristic_decisions(task, effort):
    decision = HeuristicRouter().choose(task)
    assert decision.effort == effort, decision.reason
    assert decision.reason.startswith(f"auto: {effort}")


def test_explicit_cues_win_over_topic():
    router = HeuristicRouter()
    assert router.choose("Quick question, no need to explain: is 7 prime?").effort == "low"
    assert router.choose("What is 2 + 2? Think step by step.").effort == "high"


def test_escalation_ladder_and_fixed_router():
    router = HeuristicRouter()
    up = router.escalate("low", ["check failed"])
    assert up.effort == "medium" and "escalated from low" in up.reason and "check failed" in up.reason
    assert router.escalate("medium", ["x"]).effort == "high"
    assert router.escalate("high", ["x"]) is None
    fixed = router_for("medium")
    assert isinstance(fixed, FixedRouter) and fixed.choose("anything").effort == "medium"
    assert fixed.escalate("medium", ["x"]) is None
    with pytest.raises(ValueError, match="effort must be one of"):
        router_for("extreme")


def test_custom_router_plugs_in():
    class LengthRouter(Router):
        def choose(self, task, *, tools=()):
            from agent.router import Decision
            return Decision("high" if len(task) > 20 else "low", "by length")
    router = LengthRouter()
    assert router_for(router) is router
    assert router.choose("short").effort == "low"


def test_labeled_set_size_and_accuracy():
    rows = load_tasks(DEFAULT_DATA)
    assert len(rows) >= 150
    counts = {e: sum(r["effort"] == e for r in rows) for e in EFFORTS}
    assert min(counts.values()) >= 40, counts
    report = evaluate(HeuristicRouter(), load_tasks(DEFAULT_DATA, "heldout"))
    assert report["accuracy"] >= 0.85, report["confusion"]
    # No task is ever misrouted by two levels (low <-> high) on the held-out split.
    assert report["confusion"]["low"]["high"] == 0 and report["confusion"]["high"]["low"] == 0


def test_evaluation_script_prints_accuracy_and_confusion():
    out = subprocess.run([sys.executable, "-m", "agent.evaluate_router", "--split", "all"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("all: accuracy ")
    assert "expected \\ predicted" in out.stdout
    assert len([l for l in out.stdout.splitlines() if l.strip().startswith(EFFORTS)]) == 3
