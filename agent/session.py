"""Multi-turn work: a Session keeps the conversation between runs, and saves/loads it.

    session = agent.session()
    session.run("Find the file size of ...")
    session.run("Now compare it with ...")     # sees the first turn (minus its reasoning)
    session.save("work.json"); later: agent.session().load("work.json").run("continue")

History holds every user, assistant and tool message. The system and developer messages are
rebuilt from the agent for each run (the effort may differ per run), and the Harmony renderer
drops earlier turns' analysis exactly as openai-harmony does.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Sequence

from agent.events import Done, Event, iterate_in_thread
from agent.results import Result

TRANSCRIPT_FORMAT = "gpt-oss-agent/session-v1"


class TranscriptError(ValueError):
    pass


class Session:
    def __init__(self, agent, messages: Sequence[Any] = ()):
        self.agent = agent
        self.messages: list = [_as_message(m) for m in messages]
        self.results: list[Result] = []

    def run(self, task: str, **kwargs) -> Result:
        result = None
        for event in self.stream(task, **kwargs):
            if isinstance(event, Done):
                result = event.result
        return result

    def stream(self, task: str, **kwargs) -> Iterator[Event]:
        for event in self.agent.stream(task, history=self.messages, on_turn=self.messages.extend, **kwargs):
            if isinstance(event, Done):
                self.results.append(event.result)
            yield event

    async def arun(self, task: str, **kwargs) -> Result:
        import asyncio
        return await asyncio.to_thread(self.run, task, **kwargs)

    async def astream(self, task: str, **kwargs) -> AsyncIterator[Event]:
        async for event in iterate_in_thread(lambda: self.stream(task, **kwargs)):
            yield event

    def reset(self) -> None:
        self.messages.clear()
        self.results.clear()

    # ---- transcripts ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": TRANSCRIPT_FORMAT,
                "instructions": self.agent.instructions,
                "tools": self.agent.toolset.names(),
                "messages": [m.to_dict() for m in self.messages]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    def load(self, path: str | Path) -> "Session":
        """Replace this session's history with a saved transcript (and return the session)."""
        self.messages = read_transcript(path)
        self.results.clear()
        return self


def read_transcript(path: str | Path) -> list:
    """The history messages of a saved session (or of any openai-harmony conversation JSON)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TranscriptError(f"{path}: no such transcript file") from None
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise TranscriptError(f"{path}: a transcript is an object with a 'messages' list")
    messages = []
    for index, raw in enumerate(data["messages"]):
        try:
            message = _as_message(raw)
        except Exception as exc:
            raise TranscriptError(f"{path}: message {index} is not a Harmony message: {exc}") from None
        if message.author.role in ("system", "developer"):
            continue    # rebuilt from the agent's settings on every run
        messages.append(message)
    return messages


def _as_message(value: Any):
    from agent.harmony.messages import Message
    if isinstance(value, Message):
        return value
    if isinstance(value, dict):
        return Message.from_dict(value)
    raise TypeError(f"expected a Harmony Message or its dict form, got {type(value).__name__}")
