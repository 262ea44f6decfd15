"""Generated Harmony tokens -> the pieces an OpenAI response is made of.

`OutputDecoder` reads the shared turn decoder's deltas (agent/harmony/stream.py) as an
OpenAI response sees them: reasoning text (analysis), visible content (the final answer, or a
commentary preamble) cut at the request's stop strings, and tool calls (`to=functions.NAME`,
whose body is the JSON arguments) with their call ids. Chat and responses endpoints,
streamed or not, all read the same deltas.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal, Sequence

from agent.harmony.stream import TurnDecoder
from agent.harmony.tokenizer import CALL, ENDOFTEXT, RETURN

STOP_TOKENS = (RETURN, CALL, ENDOFTEXT)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Delta:
    kind: Literal["reasoning", "content", "tool_call", "tool_args"]
    text: str = ""
    index: int = 0          # which tool call (tool_call / tool_args)
    call_id: str = ""
    name: str = ""


@dataclass
class ToolCallOut:
    call_id: str
    name: str
    arguments: str = ""


class StopMatcher:
    """Cuts visible text at the first stop string, holding back a tail that might start one."""

    def __init__(self, stops: Sequence[str] = ()):
        self.stops = [s for s in stops if s]
        self.held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> tuple[str, bool]:
        self.held += text
        hits = [(i, s) for s, i in ((s, self.held.find(s)) for s in self.stops) if i >= 0]
        if hits:
            at, self.matched = min(hits)
            out, self.held = self.held[:at], ""
            return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.held)), keep, -1):
                if self.held.endswith(stop[:n]):
                    keep = n
                    break
        cut = len(self.held) - keep
        out, self.held = self.held[:cut], self.held[cut:]
        return out, False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


@dataclass
class OutputDecoder:
    stop_strings: Sequence[str] = ()
    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    reasoning_tokens: int = 0
    generated: int = 0
    stopped_by_string: bool = False
    ended_by_token: int | None = None

    def __post_init__(self):
        self.turn = TurnDecoder()
        self._stops = StopMatcher(self.stop_strings)

    @property
    def done(self) -> bool:
        return self.stopped_by_string or self.ended_by_token is not None

    def prime(self, tokens: Sequence[int]) -> list[Delta]:
        """Feeds tokens the server wrote into the prompt (a forced tool-call header)."""
        return self._deltas(self.turn.prime(tokens))

    def feed(self, token: int) -> list[Delta]:
        if self.done:
            return []
        self.generated += 1
        if token == ENDOFTEXT:
            self.ended_by_token = token
            return []
        out = self._deltas(self.turn.feed(token))
        if any(d.kind == "reasoning" for d in out):
            self.reasoning_tokens += 1
        if token in STOP_TOKENS:
            self.ended_by_token = token
        return out

    def finish(self) -> list[Delta]:
        out = self._deltas(self.turn.finish())
        rest = self._stops.flush()
        if rest and not self.stopped_by_string:
            self.content.append(rest)
            out.append(Delta("content", rest))
        return out

    @property
    def finish_reason(self) -> str:
        if self.stopped_by_string or self.ended_by_token in (RETURN, ENDOFTEXT):
            return "stop"
        if self.ended_by_token == CALL:
            return "tool_calls" if self.tool_calls else "stop"
        return "length"

    # ---- turn deltas -> response deltas ----------------------------------------------------

    def _deltas(self, deltas) -> list[Delta]:
        out: list[Delta] = []
        for delta in deltas:
            if delta.kind == "call_start":
                name = delta.recipient.removeprefix("functions.")
                call = ToolCallOut(new_id("call"), name)
                self.tool_calls.append(call)
                out.append(Delta("tool_call", index=len(self.tool_calls) - 1,
                                 call_id=call.call_id, name=name))
            elif delta.kind == "call_args" and self.tool_calls:
                call = self.tool_calls[-1]
                call.arguments += delta.text
                out.append(Delta("tool_args", delta.text, index=len(self.tool_calls) - 1,
                                 call_id=call.call_id))
            elif delta.kind == "reasoning":
                self.reasoning.append(delta.text)
                out.append(Delta("reasoning", delta.text))
            elif delta.kind in ("final", "commentary") and not self.stopped_by_string:
                visible, hit = self._stops.feed(delta.text)
                self.stopped_by_string = hit
                if visible:
                    self.content.append(visible)
                    out.append(Delta("content", visible))
        return out
