"""Harmony prompts <-> chat-completions messages, for engines that only speak chat.

The remote backend's fallback: the agent renders a Harmony prompt as usual; the prompt is split
back into messages (effort from the system message, the developer message as a system
message, analysis as `reasoning_content`, `to=functions.X` messages as tool calls, tool
answers as `tool` messages), and the engine's answer is written back as the Harmony tokens
the model would have produced, so the agent's parser and loop run unchanged.
"""
from __future__ import annotations

import re
from typing import Sequence

from agent.harmony.conversation import assistant_message, tool_call_message
from agent.harmony.parse import StreamParser
from agent.harmony.render import render
from agent.harmony.stream import is_tool_call, message_text
from agent.harmony.tokenizer import CALL, END, RETURN

_EFFORT = re.compile(r"Reasoning:\s*(low|medium|high)", re.I)


def harmony_messages(tokens: Sequence[int]) -> list:
    """The messages of a rendered Harmony prompt, read by the one Harmony parser (the
    trailing `<|start|>assistant` of a completion prompt is no message)."""
    parser = StreamParser(role=None)
    # in a prompt, <|call|> and <|return|> close a message like <|end|>; they stop nothing
    parser.process_all(END if token in (CALL, RETURN) else token for token in tokens)
    return parser.messages


def chat_messages_from_prompt(tokens: Sequence[int]) -> tuple[str, list[dict]]:
    effort, messages, calls = "medium", [], 0
    pending: dict | None = None  # the assistant message being assembled

    def flush():
        nonlocal pending
        if pending is not None:
            messages.append(pending)
            pending = None

    for m in harmony_messages(tokens):
        role, text = m.author.role.value, message_text(m)
        if role == "system":
            found = _EFFORT.search(text)
            effort = found.group(1).lower() if found else effort
        elif role == "developer":
            flush()
            messages.append({"role": "system", "content": text})
        elif role == "user":
            flush()
            messages.append({"role": "user", "content": text})
        elif role == "assistant":
            pending = pending or {"role": "assistant", "content": None}
            if is_tool_call(m):
                calls += 1
                pending.setdefault("tool_calls", []).append({
                    "id": f"call_{calls}", "type": "function",
                    "function": {"name": m.recipient.removeprefix("functions."),
                                 "arguments": text}})
            elif m.channel == "analysis":
                pending["reasoning_content"] = text
            else:
                pending["content"] = text
        else:  # a tool's answer, authored by the tool's name
            flush()
            messages.append({"role": "tool", "tool_call_id": f"call_{calls}", "content": text})
    flush()
    return effort, messages


def harmony_tokens_from_chat(message: dict, finish_reason: str | None) -> list[int]:
    """The Harmony tokens the model would have written for a chat answer (after the
    prompt's `<|start|>assistant`): its reasoning, then its first tool call or its text."""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    calls = message.get("tool_calls") or []
    said = [assistant_message(reasoning, "analysis")] if reasoning else []
    if calls:
        fn = calls[0]["function"]
        said.append(tool_call_message(f"functions.{fn['name']}", fn.get("arguments") or "{}"))
    else:
        said.append(assistant_message(message.get("content") or "", "final"))
    tokens = [t for m in said for t in render(m)][2:]  # the prompt has <|start|>assistant
    if not calls:
        tokens = tokens[:-1] + ([] if finish_reason == "length" else [RETURN])
    return tokens
