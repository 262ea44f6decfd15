"""Typed events that `Agent.stream` yields while a run is under way."""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import AsyncIterator, Callable, Iterator, Literal, Union

from pydantic import BaseModel

from agent.results import Result


class EffortChosen(BaseModel):
    type: Literal["effort"] = "effort"
    effort: str
    reason: str
    attempt: int = 1


class ReasoningDelta(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    text: str


class CommentaryDelta(BaseModel):
    """Text the model addresses to the user on the commentary channel (a preamble)."""
    type: Literal["commentary"] = "commentary"
    text: str


class FinalDelta(BaseModel):
    type: Literal["final"] = "final"
    text: str


class ToolCallStarted(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    recipient: str
    input: str


class ToolResultReceived(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    recipient: str
    output: str
    error: bool = False


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    message: str


class Done(BaseModel):
    type: Literal["done"] = "done"
    result: Result


Event = Union[EffortChosen, ReasoningDelta, CommentaryDelta, FinalDelta, ToolCallStarted,
              ToolResultReceived, ErrorEvent, Done]


async def iterate_in_thread(make: Callable[[], Iterator[Event]]) -> AsyncIterator[Event]:
    """Drive a blocking event generator in a worker thread and hand its items to asyncio."""
    items: queue.Queue = queue.Queue()
    end = object()

    def pump() -> None:
        try:
            for item in make():
                items.put(item)
        except BaseException as exc:  # surfaced in the awaiting task
            items.put(exc)
        items.put(end)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        item = await asyncio.to_thread(items.get)
        if item is end:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
