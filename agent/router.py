"""Reasoning-effort routing: which effort (low/medium/high) a task starts at, and whether a
run that ended badly is retried one level up.

`Router` is the interface users implement; `FixedRouter` always answers one level and never
escalates; `HeuristicRouter` (effort="auto") scores cheap text features of the task and
escalates low -> medium -> high. Every decision carries a reason a person can read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class Decision:
    effort: str
    reason: str


class Router:
    """Subclass and override `choose` (and `escalate` if you like)."""

    def choose(self, task: str, *, tools: Sequence[str] = ()) -> Decision:
        raise NotImplementedError

    def escalate(self, effort: str, problems: Sequence[str]) -> Decision | None:
        """After a run at `effort` ended with `problems`: the next effort, or None to stop."""
        index = EFFORTS.index(effort)
        if index + 1 >= len(EFFORTS):
            return None
        return Decision(EFFORTS[index + 1], f"escalated from {effort}: " + "; ".join(problems))


class FixedRouter(Router):
    def __init__(self, effort: str):
        if effort not in EFFORTS:
            raise ValueError(f"effort must be one of {', '.join(EFFORTS)} or 'auto', got {effort!r}")
        self.effort = effort

    def choose(self, task: str, *, tools: Sequence[str] = ()) -> Decision:
        return Decision(self.effort, f"fixed effort {self.effort}")

    def escalate(self, effort: str, problems: Sequence[str]) -> Decision | None:
        return None     # the user asked for this level; do not spend more behind their back


def _words(*phrases: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.IGNORECASE)


# Each feature: (name, pattern, points). Positive points push towards high effort.
_CUES_FAST = _words(r"quick(?:ly)? question", r"quick(?:ly)?", r"briefly", r"in one (?:word|sentence|line)",
                    r"one[- ]word", r"just (?:tell|give|say|answer)", r"short answer", r"tl;?dr",
                    r"no need to explain", r"yes or no", r"off the top of your head")
_CUES_CAREFUL = _words(r"think (?:carefully|hard|deeply|step by step)", r"step[- ]by[- ]step",
                       r"carefully", r"rigorous(?:ly)?", r"thorough(?:ly)?", r"in (?:depth|detail)",
                       r"detailed", r"double[- ]check", r"justify", r"formal(?:ly)? proof")
_PROOF = _words(r"prove", r"proof", r"derive", r"derivation", r"show (?:that|your work)", r"theorem", r"lemma")
_MATH_HARD = _words(r"integral", r"integrate", r"lagrange", r"variance", r"converge\w*",
                    r"solutions? (?:of|to)", r"irrational",
                    r"derivative", r"differential equation", r"eigen\w*", r"matri(?:x|ces)",
                    r"probability", r"expected value", r"combinatori\w*", r"modulo", r"mod \d+",
                    r"prime factor\w*", r"limit of", r"series", r"induction", r"optimi[sz]e",
                    r"minimi[sz]e", r"maximi[sz]e", r"inequality", r"polynomial", r"recurrence",
                    r"how many ways", r"asymptotic\w*", r"complexity", r"big-?o")
_MATH_LIGHT = _words(r"calculate", r"compute", r"solve", r"equation", r"percent(?:age)?", r"average",
                     r"sum of", r"product of", r"convert", r"how many", r"how much", r"area",
                     r"volume", r"ratio", r"interest", r"square root", r"factorial")
_ARITH = re.compile(r"\d\s*[-+*/^%×÷=]\s*\d|\d+\s*(?:squared|cubed)")
_ALGEBRA = re.compile(r"\b[a-z]\s*\^\s*\d|\b[a-z]\s*\(\s*[a-z](?:\s*,\s*[a-z])*\s*\)\s*=|[a-z]''\s*[+=-]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CODE = _words(r"code", r"function", r"implement\w*", r"debug\w*", r"bug", r"refactor\w*",
               r"algorithm", r"regex", r"regular expression", r"sql", r"query", r"script",
               r"python", r"javascript", r"typescript", r"rust", r"c\+\+", r"java", r"compile\w*", r"json",
               r"yaml", r"bash", r"git", r"docker", r"design", r"architecture", r"schema",
               r"stack trace", r"exception", r"class", r"api", r"unit tests?", r"data structure",
               r"recursion", r"recursive", r"concurren\w*", r"thread-?safe", r"race condition",
               r"deadlock")
_CODE_HARD = _words(r"design", r"architect\w*", r"distributed", r"scal(?:e|able|ability)",
                    r"concurren\w*", r"race condition", r"deadlock", r"optimi[sz]e", r"lock-free",
                    r"compiler", r"interpreter", r"parser", r"from scratch", r"trade-?offs?",
                    r"consensus", r"garbage collect\w*", r"memory leak", r"performance",
                    r"thread-?safe", r"o\([^)]*\)", r"millions?", r"replicat\w*", r"consisten\w*",
                    r"zero downtime", r"migration", r"real-time")
_LOGIC = _words(r"puzzle", r"riddle", r"logic(?:al)?", r"deduce", r"paradox", r"knights? and knaves?",
                r"who (?:owns|lies|is lying)", r"contradiction", r"strategy", r"game theory",
                r"if and only if", r"counterexample", r"syllogism")
_ANALYSIS = _words(r"compare", r"contrast", r"analy[sz]e", r"evaluate", r"pros and cons",
                   r"trade-?offs?", r"plan", r"critique", r"assess", r"explain why", r"why does",
                   r"implications?", r"strategy", r"essay", r"argue", r"review")
_EXPLAIN = _words(r"explain\w*", r"describe", r"how (?:does|do|did|can|would)", r"why", r"summari[sz]e",
                  r"differences?", r"draft", r"write", r"outline", r"itinerary", r"rewrite this paragraph",
                  r"give examples?", r"with examples?", r"what causes", r"what (?:are|were) the main")
_TOOLS = _words(r"search", r"look up", r"latest", r"current(?:ly)?", r"today'?s?", r"news",
                r"browse", r"website", r"url", r"find (?:sources|articles|papers)", r"cite",
                r"sources?", r"run (?:this|the|it)", r"execute", r"plot", r"csv", r"dataset")
_SMALLTALK = _words(r"hi", r"hello", r"hey", r"thanks?", r"thank you", r"good (?:morning|night)",
                    r"how are you", r"what'?s up")
_LOOKUP = re.compile(r"^\s*(?:what|who|when|where|which)\s+(?:is|was|are|were|does|did)\b.{0,60}\??\s*$",
                     re.IGNORECASE)
_STEPS = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*•])\s+\S")


class HeuristicRouter(Router):
    """effort="auto": a fast, explainable difficulty estimate from the task text.

    Scores: explicit cues dominate ("quick question" -> low, "think carefully" -> high);
    otherwise math, code, logic, analysis and multi-part markers and length add points, and
    tool needs put a floor at medium. <= 1 point: low, 2-3: medium, >= 4: high.
    """

    low_below = 2
    high_from = 4

    def estimate(self, task: str, tools: Sequence[str] = ()) -> tuple[int, list[str]]:
        text = task.strip()
        words = len(text.split())
        points, why = 0, []

        def add(n: int, reason: str) -> None:
            nonlocal points
            points += n
            why.append(f"{reason} ({n:+d})")

        careful = _CUES_CAREFUL.findall(text)
        if careful:
            add(4, f"asks for care: {careful[0]!r}")
        fast = _CUES_FAST.search(text)
        if fast:
            add(-3, f"asks for speed: {fast.group(0)!r}")
        proof = _PROOF.search(text)
        hard_math = set(m.lower() for m in _MATH_HARD.findall(text))
        if _ALGEBRA.search(text):
            hard_math.add("algebra")
        if proof:
            add(4, f"proof or derivation: {proof.group(0)!r}")
        elif hard_math:
            add(3 + min(len(hard_math) - 1, 1), "advanced math: " + ", ".join(sorted(hard_math)[:3]))
        elif (_MATH_LIGHT.search(text) or _ARITH.search(text)) and not _CODE.search(text):
            numbers = len(_NUMBER.findall(text))
            add(1 if numbers < 3 and words < 15 else 2, "arithmetic or a small calculation")
        code = set(m.lower() for m in _CODE.findall(text))
        hard_tech = set(m.lower() for m in _CODE_HARD.findall(text))
        if code:
            add(2 + (2 if hard_tech else 0),
                "programming" + (" with design/performance concerns" if hard_tech else ""))
        if _LOGIC.search(text):
            add(3, f"logic/puzzle: {_LOGIC.search(text).group(0)!r}")
        analysis = set(m.lower() for m in _ANALYSIS.findall(text))
        if analysis:
            add(2 + min(len(analysis) - 1 + bool(hard_tech and not code), 2),
                "analysis asked: " + ", ".join(sorted(analysis)[:3]))
        elif not code and _EXPLAIN.search(text):
            add(2, f"explanation or writing: {_EXPLAIN.search(text).group(0)!r}")
        parts = text.count("?") + len(_STEPS.findall(text))
        if parts >= 3:
            add(2, f"multi-part request ({parts} parts)")
        elif parts == 2:
            add(1, "two-part request")
        if words > 150:
            add(2, f"long task ({words} words)")
        elif words > 60:
            add(1, f"longish task ({words} words)")
        if _SMALLTALK.match(text) and words <= 6:
            add(-2, "small talk")
        elif _LOOKUP.match(text) and not (code or hard_math or analysis or _EXPLAIN.search(text)):
            add(-1, "short factual question")
        if _TOOLS.search(text):
            why.append(f"needs tools: {_TOOLS.search(text).group(0)!r} (floor: medium)")
        return points, why

    def choose(self, task: str, *, tools: Sequence[str] = ()) -> Decision:
        points, why = self.estimate(task, tools)
        if points >= self.high_from:
            effort = "high"
        elif points >= self.low_below:
            effort = "medium"
        else:
            effort = "low"
        if effort == "low" and any(w.startswith("needs tools") for w in why):
            effort = "medium"
        summary = ", ".join(why) if why else "short, plain request"
        return Decision(effort, f"auto: {effort} (score {points}: {summary})")


def router_for(effort: "str | Router") -> Router:
    if isinstance(effort, Router):
        return effort
    if effort == "auto":
        return HeuristicRouter()
    return FixedRouter(effort)
