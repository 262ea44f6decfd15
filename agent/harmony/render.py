"""Harmony rendering: messages and conversations -> token ids, token-identical to openai-harmony.

Message frames are assembled here token by token (`<|start|>role to=R<|channel|>C
<|constrain|>json<|message|>...<|end|>`); the wording of system and developer messages lives in
jinja2 templates (`prompts/`). Pass `Renderer(template_dir=...)`, or set $GPT_OSS_AGENT_PROMPTS_DIR for
the module-level functions and the CLI, to override any of those templates with a file of the
same name, without touching code.

Each header piece is tokenized separately, exactly as openai-harmony does, because BPE over
the joined string could merge across piece boundaries and change the ids.
"""
from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Iterable

import jinja2

from . import tokenizer as tk
from .messages import (Conversation, DeveloperContent, Message, Role, SystemContent,
                       TextContent)
from .schema import schema_to_typescript

CONSTRAIN_MARKER = "<|constrain|>"


def rust_lines(text: str | None) -> list[str]:
    """Split like Rust's `str::lines` (only `\\n`, a trailing `\\r` dropped, no final empty line)."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _compact_json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _sorted_namespaces(tools: dict | None) -> list:
    # openai-harmony keeps namespaces in a BTreeMap: they render sorted by key.
    return [tools[key] for key in sorted(tools)] if tools else []


def has_function_tools(messages: Iterable[Message]) -> bool:
    """Whether any developer message declares a non-empty `functions` namespace."""
    for message in messages:
        for content in message.content:
            if isinstance(content, DeveloperContent) and content.tools:
                functions = content.tools.get("functions")
                if functions is not None and functions.tools:
                    return True
    return False


def drop_analysis(messages: list[Message]) -> list[Message]:
    """openai-harmony's chain-of-thought rule for history.

    When the last assistant message is a `final` answer, `analysis` messages before the first
    `final` message are dropped; while a tool-call chain is ongoing (last assistant message not
    final) everything is kept so the model can continue its reasoning.
    """
    last_assistant = next((m for m in reversed(messages) if m.author.role == Role.ASSISTANT), None)
    if last_assistant is None or last_assistant.channel != "final":
        return list(messages)
    first_final = next((i for i, m in enumerate(messages) if m.channel == "final"), None)
    return [m for i, m in enumerate(messages)
            if not (first_final is not None and i < first_final and m.channel == "analysis")]


class Renderer:
    """Renders Harmony messages to token ids; `template_dir` overrides templates by name."""

    def __init__(self, template_dir: str | Path | None = None):
        loaders: list[jinja2.BaseLoader] = []
        if template_dir is not None:
            if not Path(template_dir).is_dir():
                raise FileNotFoundError(f"template folder not found: {template_dir}")
            loaders.append(jinja2.FileSystemLoader(str(template_dir)))
        loaders.append(jinja2.FileSystemLoader(str(resources.files("agent.prompts"))))
        self.env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders),
                                      extensions=["jinja2.ext.do"], autoescape=False,
                                      undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self.env.filters.update(lines=rust_lines, typescript=schema_to_typescript,
                                compact_json=_compact_json)

    # --- text of the special contents ------------------------------------------------------

    def system_text(self, content: SystemContent, function_tools: bool = False) -> str:
        effort = content.reasoning_effort.value.lower() if content.reasoning_effort else None
        return self.env.get_template("system.jinja").render(
            model_identity=content.model_identity, knowledge_cutoff=content.knowledge_cutoff,
            conversation_start_date=content.conversation_start_date, reasoning_effort=effort,
            tools=_sorted_namespaces(content.tools), channel_config=content.channel_config,
            has_function_tools=function_tools)

    def developer_text(self, content: DeveloperContent) -> str:
        return self.env.get_template("developer.jinja").render(
            instructions=content.instructions, tools=_sorted_namespaces(content.tools),
            response_formats=content.response_formats or [])

    # --- messages --------------------------------------------------------------------------

    def header_tokens(self, message: Message) -> list[int]:
        """`<|start|>` through `<|message|>`."""
        enc = tk.encode_text
        author = message.author
        tokens = [tk.START]
        if author.role == Role.TOOL:
            if not author.name:
                raise ValueError("tool message needs an author name (e.g. 'functions.get_weather')")
            tokens += enc(author.name)
        else:
            tokens += enc(author.role.value)
            if author.name:
                tokens += enc(f":{author.name}")
        if message.recipient is not None and message.recipient != "all":
            tokens += enc(f" to={message.recipient}")
        if message.channel is not None:
            tokens += [tk.CHANNEL] + enc(message.channel)
        if message.content_type is not None:
            if message.content_type.startswith(CONSTRAIN_MARKER):
                rest = message.content_type[len(CONSTRAIN_MARKER):]
                tokens += enc(" ") + [tk.CONSTRAIN] + (enc(rest) if rest else [])
            else:
                tokens += enc(f" {message.content_type}")
        return tokens + [tk.MESSAGE]

    def content_tokens(self, message: Message, function_tools: bool = False) -> list[int]:
        tokens: list[int] = []
        for content in message.content:
            if isinstance(content, TextContent):
                tokens += tk.encode_text(content.text)
            elif isinstance(content, SystemContent):
                if message.author.role != Role.SYSTEM:
                    raise ValueError(f"system content in a {message.author.role.value} message")
                tokens += tk.encode_text(self.system_text(content, function_tools))
            elif isinstance(content, DeveloperContent):
                if message.author.role != Role.DEVELOPER:
                    raise ValueError(f"developer content in a {message.author.role.value} message")
                tokens += tk.encode_text(self.developer_text(content))
        return tokens

    def render(self, message: Message, function_tools: bool = False) -> list[int]:
        """One message, ending in `<|call|>` for an assistant tool call, else `<|end|>`."""
        is_call = message.author.role == Role.ASSISTANT and message.recipient is not None
        return (self.header_tokens(message) + self.content_tokens(message, function_tools)
                + [tk.CALL if is_call else tk.END])

    # --- conversations ---------------------------------------------------------------------

    def render_conversation(self, conversation: Conversation | Iterable[Message],
                            auto_drop_analysis: bool = True) -> list[int]:
        messages = list(conversation)
        function_tools = has_function_tools(messages)
        if auto_drop_analysis:
            messages = drop_analysis(messages)
        tokens: list[int] = []
        for message in messages:
            tokens += self.render(message, function_tools)
        return tokens

    def render_conversation_for_completion(self, conversation: Conversation | Iterable[Message],
                                           next_role: Role | str = Role.ASSISTANT,
                                           auto_drop_analysis: bool = True) -> list[int]:
        """The prompt for sampling: the conversation, then `<|start|>{next_role}`."""
        return (self.render_conversation(conversation, auto_drop_analysis)
                + [tk.START] + tk.encode_text(Role(next_role).value))

    def render_conversation_for_training(self, conversation: Conversation | Iterable[Message],
                                         auto_drop_analysis: bool = True) -> list[int]:
        """As for history, but a last assistant `final` message ends in `<|return|>`."""
        messages = list(conversation)
        tokens = self.render_conversation(messages, auto_drop_analysis)
        last = messages[-1] if messages else None
        if last is not None and last.author.role == Role.ASSISTANT and last.channel == "final":
            tokens[-1] = tk.RETURN
        return tokens


PROMPTS_ENV = "GPT_OSS_AGENT_PROMPTS_DIR"


@functools.lru_cache(maxsize=4)
def _renderer_for(template_dir: str | None) -> Renderer:
    return Renderer(template_dir)


def default_renderer() -> Renderer:
    """The packaged templates, or the folder named by $GPT_OSS_AGENT_PROMPTS_DIR overriding them."""
    return _renderer_for(os.environ.get(PROMPTS_ENV) or None)


def render(message: Message, function_tools: bool = False) -> list[int]:
    return default_renderer().render(message, function_tools)


def render_conversation(conversation, auto_drop_analysis: bool = True) -> list[int]:
    return default_renderer().render_conversation(conversation, auto_drop_analysis)


def render_conversation_for_completion(conversation, next_role: Role | str = Role.ASSISTANT,
                                       auto_drop_analysis: bool = True) -> list[int]:
    return default_renderer().render_conversation_for_completion(conversation, next_role,
                                                                 auto_drop_analysis)


def render_conversation_for_training(conversation, auto_drop_analysis: bool = True) -> list[int]:
    return default_renderer().render_conversation_for_training(conversation, auto_drop_analysis)


def stop_tokens_for_assistant_actions() -> list[int]:
    """Sampling stops here: `<|return|>` (answer done) and `<|call|>` (tool call)."""
    return [tk.RETURN, tk.CALL]


def stop_tokens() -> list[int]:
    """Every token that ends a message: `<|return|>`, `<|call|>`, `<|end|>`."""
    return [tk.RETURN, tk.CALL, tk.END]
