"""Fixtures for the agent-loop tests: agents over the scripted backend, and the bridge to
openai-harmony (the independent oracle for what a prompt must look like)."""
from __future__ import annotations

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.loop import Agent

FINAL = "<|channel|>final<|message|>{}<|return|>"
THINK = "<|channel|>analysis<|message|>{}<|end|><|start|>assistant"


def call(recipient: str, arguments: str, channel: str = "commentary", json: bool = True,
         content_type: str | None = None) -> str:
    """A completion that calls a tool (stops at <|call|> as a real engine would)."""
    kind = f" {content_type}" if content_type else (" <|constrain|>json" if json else "")
    return f"<|channel|>{channel} to={recipient}{kind}<|message|>{arguments}<|call|>"


@pytest.fixture
def make_agent():
    agents = []

    def make(completions, tools=(), **options):
        options.setdefault("effort", "low")
        options.setdefault("date", None)
        backend = ScriptedBackend(completions, logprob=options.pop("logprob", None))
        agent = Agent(backend, tools=tools, **options)
        agents.append(agent)
        return agent, backend

    yield make
    for agent in agents:
        agent.close()


@pytest.fixture
def oracle_prompt(harmony_encoding):
    """The tokens openai-harmony renders for a list of our message dicts (next: assistant)."""
    from openai_harmony import Conversation, Message, Role

    def render(messages: list[dict]) -> list[int]:
        conversation = Conversation.from_messages([Message.from_dict(m) for m in messages])
        return harmony_encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)

    return render
