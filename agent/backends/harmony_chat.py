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

from agent.harmony.tokenizer import (CALL, CHANNEL, CONSTRAIN, END, MESSAGE, RETURN, START,
                                     get_encoding)

_EFFORT = re.compile(r"Reasoning:\s*(low|medium|high)", re.I)


def harmony_messages(tokens: Sequence[int]) -> list[dict]:
    """Splits a rendered Harmony prompt into {role, recipient, channel, text} dicts."""
    enc = get_encoding()
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] != START:
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and tokens[j] != MESSAGE:
            j += 1
        k = j + 1
        while k < len(tokens) and tokens[k] not in (END, CALL, RETURN, START):
            k += 1
        header = enc.decode(list(tokens[i + 1:j]))
        role = re.split(r"[\s<]", header, 1)[0]
        to = re.search(r"to=([^\s<]+)", header)
        channel = re.search(r"<\|channel\|>(\w+)", header)
        out.append({"role": role, "recipient": to.group(1) if to else None,
                    "channel": channel.group(1) if channel else None,
                    "text": enc.decode(list(tokens[j + 1:k])) if j < len(tokens) else ""})
        i = k
    return out


def chat_messages_from_prompt(tokens: Sequence[int]) -> tuple[str, list[dict]]:
    effort, messages, calls = "medium", [], 0
    pending: dict | None = None  # the assistant message being assembled

    def flush():
        nonlocal pending
        if pending is not None:
            messages.append(pending)
            pending = None

    for m in harmony_messages(tokens):
        role, text = m["role"], m["text"]
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
            if not text and m["recipient"] is None and m["channel"] is None:
                continue  # the trailing `<|start|>assistant` of a completion prompt
            pending = pending or {"role": "assistant", "content": None}
            if m["recipient"] and m["recipient"] != "user":
                calls += 1
                pending.setdefault("tool_calls", []).append({
                    "id": f"call_{calls}", "type": "function",
                    "function": {"name": m["recipient"].removeprefix("functions."),
                                 "arguments": text}})
            elif m["channel"] == "analysis":
                pending["reasoning_content"] = text
            else:
                pending["content"] = text
        else:  # a tool's answer, authored by the tool's name
            flush()
            messages.append({"role": "tool", "tool_call_id": f"call_{calls}", "content": text})
    flush()
    return effort, messages


def harmony_tokens_from_chat(message: dict, finish_reason: str | None) -> list[int]:
    enc = get_encoding()

    def header(channel: str, recipient: str | None = None, json_args: bool = False) -> list[int]:
        text = channel + (f" to={recipient}" if recipient else "") + (" " if json_args else "")
        return [CHANNEL] + enc.encode_ordinary(text) + ([CONSTRAIN] + enc.encode_ordinary("json")
                                                        if json_args else []) + [MESSAGE]

    tokens: list[int] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning:
        tokens += header("analysis") + enc.encode_ordinary(reasoning) + [END, START] + \
            enc.encode_ordinary("assistant")
    calls = message.get("tool_calls") or []
    if calls:
        fn = calls[0]["function"]
        tokens += header("commentary", f"functions.{fn['name']}", True) + \
            enc.encode_ordinary(fn.get("arguments") or "{}") + [CALL]
    else:
        tokens += header("final") + enc.encode_ordinary(message.get("content") or "")
        if finish_reason != "length":
            tokens.append(RETURN)
    return tokens

