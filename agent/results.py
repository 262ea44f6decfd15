"""What a run returns: the final text, every message, the tool calls, effort decisions,
token usage and timings. Field names match the `--json` keys of `python -m agent`."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

Effort = Literal["low", "medium", "high"]

# Why a run ended. Anything but "done" means the answer is partial (see Result.reason).
StopReason = Literal["done", "max_steps", "max_tokens", "timeout", "invalid_output", "error"]


class Usage(BaseModel):
    prompt_tokens: int = 0      # tokens in all prompts sent to the model
    reused_tokens: int = 0      # of those, served from the prefix cache
    computed_tokens: int = 0    # of those, run through the model
    generated_tokens: int = 0

    def add(self, other: "Usage | dict") -> None:
        other = other if isinstance(other, dict) else other.model_dump()
        for key in type(self).model_fields:
            setattr(self, key, getattr(self, key) + int(other.get(key) or 0))


class Timings(BaseModel):
    total_s: float = 0.0
    model_s: float = 0.0        # rendering, generation and parsing
    tools_s: float = 0.0
    first_token_s: float | None = None


class ToolCall(BaseModel):
    recipient: str
    input: str
    output: str
    error: bool = False
    step: int = 0


class EffortDecision(BaseModel):
    effort: Effort
    reason: str
    attempt: int = 1


class Citation(BaseModel):
    """A 【cursor†Lstart-Lend】 marker in the final text, resolved to the page it cites."""
    marker: str
    cursor: int
    start_line: int | None = None
    end_line: int | None = None
    url: str | None = None
    title: str | None = None


class Result(BaseModel):
    final: str = ""
    effort: Effort = "medium"
    effort_reason: str = ""
    decisions: list[EffortDecision] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    messages: list[dict] = Field(default_factory=list)     # Harmony message dicts, whole prompt
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    citations: list[Citation] = Field(default_factory=list)
    stop_reason: StopReason = "done"
    reason: str = ""            # a sentence explaining stop_reason when it is not "done"
    errors: list[str] = Field(default_factory=list)         # problems met on the way
    reasoning: str = ""         # the analysis text of this turn
    steps: int = 0
    attempts: int = 1
    confidence: float | None = None   # geometric-mean probability of the final answer's tokens
    output: Any = Field(default=None, exclude=True)          # validated structured output

    @property
    def ok(self) -> bool:
        return self.stop_reason == "done"

    def to_json_dict(self) -> dict:
        data = self.model_dump(mode="json")
        if self.output is not None and hasattr(self.output, "model_dump"):
            data["output"] = self.output.model_dump(mode="json")
        return data

    def __str__(self) -> str:
        return self.final

    def __getattr__(self, name: str) -> Any:
        # With `run(task, output=Model)` the result reads through to the validated object, so
        # `agent.run(..., output=Person).name` works; `result.output` is the object itself.
        output = self.__dict__.get("output")
        if output is not None and not name.startswith("_") and hasattr(output, name):
            return getattr(output, name)
        return super().__getattr__(name)


_CITATION = re.compile(r"【(\d+)†L(\d+)(?:-L(\d+))?】")


def find_citations(text: str, pages: dict[int, dict]) -> list[Citation]:
    """Citation markers in `text`; `pages` maps browser cursors to {url, title} when known."""
    found = []
    for match in _CITATION.finditer(text):
        cursor = int(match.group(1))
        start = int(match.group(2))
        end = int(match.group(3)) if match.group(3) else start
        page = pages.get(cursor, {})
        found.append(Citation(marker=match.group(0), cursor=cursor, start_line=start, end_line=end,
                              url=page.get("url"), title=page.get("title")))
    return found
