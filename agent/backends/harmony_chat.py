"""Harmony prompts <-> chat-completions messages, for engines that only speak chat.

The remote backend's fallback: the agent renders a Harmony prompt as usual; the prompt is split
back into messages (effort from the system message, the developer message as a system
message, analysis as `reasoning_content`, `to=functions.X` messages as tool calls, tool
answers as `tool` messages), and the engine's answer is written back as the Harmony tokens
the model would have produced, so the agent's parser and loop run unchanged.

Engines that take text instead of token ids (Ollama's raw prompt, any chat server) tokenize it
with special tokens parsed, so a tool result that prints `<|end|><|start|>assistant...` would
become real Harmony structure there (and the lenient parser below would split messages at it).
So the text between a prompt's special tokens is made `inert` first: a zero-width space after
the `<` of anything shaped like a special token. The structure the renderer wrote stays special
tokens; the model sees nearly the text that was written.
"""
from __future__ import annotations

import re
from itertools import groupby
from typing import Sequence

from agent.harmony.conversation import assistant_message, tool_call_message
from agent.harmony.parse import StreamParser
from agent.harmony.render import render
from agent.harmony.stream import is_tool_call, message_text
from agent.harmony.tokenizer import CALL, END, O200K_RANKS, RETURN, get_encoding

_EFFORT = re.compile(r"Reasoning:\s*(low|medium|high)", re.I)
# `<|name|>` for any name, not only this vocabulary's: the engine's tokenizer has its own list.
_SPECIAL_SHAPED = re.compile(r"<\|(?=[^\s<>|]+\|>)")
ZERO_WIDTH_SPACE = "\u200b"


def inert(text: str) -> str:
    """`text` with a zero-width space (U+200B) after the `<` of every `<|name|>`: no tokenizer
    reads that as a special token, and text that does not look like one is left alone."""
    return _SPECIAL_SHAPED.sub("<" + ZERO_WIDTH_SPACE + "|", text)


def inert_prompt(tokens: Sequence[int]) -> list[int]:
    """A rendered prompt whose text between special tokens (contents, headers) is inert: only
    the renderer's special tokens read as structure, even once the prompt becomes text."""
    enc, out = get_encoding(), []
    for special, run in groupby(tokens, key=lambda t: t >= O200K_RANKS):
        run = list(run)
        if not special and (text := enc.decode(run)) != inert(text):
            run = enc.encode_ordinary(inert(text))  # other runs keep their exact tokens
        out += run
    return out


def prompt_text(tokens: Sequence[int]) -> str:
    """A rendered prompt as the text to send an engine that tokenizes it (Ollama)."""
    return get_encoding().decode(inert_prompt(tokens))


def harmony_messages(tokens: Sequence[int]) -> list:
    """The messages of a rendered Harmony prompt, read by the one Harmony parser (the
    trailing `<|start|>assistant` of a completion prompt is no message)."""
    parser = StreamParser(role=None)
    # in a prompt, <|call|> and <|return|> close a message like <|end|>; they stop nothing;
    # spelled-out markers are contents there, not the model's slips the parser repairs
    parser.process_all(END if token in (CALL, RETURN) else token
                       for token in inert_prompt(tokens))
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
