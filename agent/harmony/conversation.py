"""Messages -> the Harmony prompt of one assistant turn, for the loop and the server alike.

A gpt-oss prompt is a system message (identity, date, reasoning effort, built-in tool
namespaces such as browser and python), a developer message (instructions, the `functions`
namespace, response formats) and the history. The history is rendered under Harmony's rule
for analysis (render.drop_analysis: reasoning before an earlier final answer is dropped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from .messages import (Author, DeveloperContent, Message, Role, SystemContent, ToolDescription,
                       ToolNamespaceConfig)
from .render import render_conversation_for_completion

JSON_CONTENT = "<|constrain|>json"


@dataclass(frozen=True)
class ResponseSchema:
    """A response format: the final answer is a JSON value matching `schema`."""
    name: str
    schema: dict
    description: Optional[str] = None


def system_message(effort: str, *, date: Optional[str] = None, identity: Optional[str] = None,
                   namespaces: Iterable[ToolNamespaceConfig] = ()) -> Message:
    content = SystemContent.new().with_reasoning_effort(effort)
    if identity:
        content = content.with_model_identity(identity)
    if date:
        content = content.with_conversation_start_date(date)
    for namespace in namespaces:
        content = content.with_tools(namespace)
    return Message.from_role_and_content(Role.SYSTEM, content)


def developer_message(instructions: Optional[str] = None,
                      functions: Sequence[ToolDescription] = (),
                      response_format: Optional[ResponseSchema] = None) -> Optional[Message]:
    """The developer message, or None when there is nothing to say in it."""
    if not (instructions or functions or response_format):
        return None
    content = DeveloperContent.new()
    if instructions:
        content = content.with_instructions(instructions)
    if functions:
        content = content.with_function_tools(list(functions))
    if response_format is not None:
        content = content.with_response_format(response_format.name, response_format.schema,
                                               response_format.description)
    return Message.from_role_and_content(Role.DEVELOPER, content)


def prompt_messages(system: Message, developer: Optional[Message],
                    history: Iterable[Message]) -> list[Message]:
    return [system] + ([developer] if developer is not None else []) + list(history)


def render_prompt(messages: Sequence[Message]) -> list[int]:
    """The prompt tokens, ending with `<|start|>assistant` for the model to continue."""
    from .messages import Conversation
    return list(render_conversation_for_completion(Conversation.from_messages(list(messages)),
                                                   "assistant"))


def tools_free_turn(prompt: Sequence[int]) -> bool:
    """Whether a raw prompt asks for an assistant turn (it ends with `<|start|>assistant`)
    while its system and developer messages declare no tools (no `# Tools` section): such a
    turn may only answer, so the server constrains it that way."""
    from . import tokenizer as tk
    enc = tk.get_encoding()
    if len(prompt) < 2 or list(prompt[-2:]) != [tk.START, *enc.encode("assistant")]:
        return False
    text = enc.decode(list(prompt[:-2]))
    for header, _, rest in (part.partition("<|message|>") for part in text.split("<|start|>")[1:]):
        if header.split("<|channel|>")[0].strip() in ("system", "developer") and \
                "# Tools" in rest.split("<|end|>")[0].splitlines():
            return False
    return True


def tool_call_message(recipient: str, arguments: str, channel: str = "commentary",
                      content_type: Optional[str] = JSON_CONTENT) -> Message:
    """The assistant's call of a tool, as history (`to=functions.NAME`, JSON arguments)."""
    message = (Message.from_role_and_content(Role.ASSISTANT, arguments or "{}")
               .with_channel(channel).with_recipient(recipient))
    return message.with_content_type(content_type) if content_type else message


def tool_result_message(author: str, text: str, channel: str = "commentary") -> Message:
    """A tool's answer to the assistant, authored by the tool (`functions.NAME`, `python`)."""
    return (Message.from_author_and_content(Author.new(Role.TOOL, author), text)
            .with_channel(channel).with_recipient("assistant"))


def assistant_message(text: str, channel: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


def user_message(text: str) -> Message:
    return Message.from_role_and_content(Role.USER, text)
