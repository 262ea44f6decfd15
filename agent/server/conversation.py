"""OpenAI request messages -> a Harmony conversation (system, developer, history).

Chat `system`/`developer` messages become the developer message's instructions (gpt-oss keeps
its own system message for identity, effort and channels); assistant turns become analysis,
commentary tool calls (`to=functions.NAME`, JSON) and final messages; tool results become
messages authored by `functions.NAME`. The same history form serves /v1/responses.
"""
from __future__ import annotations

from typing import Iterable

from agent.harmony.messages import (Author, Conversation, DeveloperContent, Message, Role,
                                    SystemContent, ToolDescription)
from agent.server.errors import ApiError
from agent.server.schemas import (ChatMessage, FunctionCallItem, FunctionCallOutputItem,
                                  FunctionDef, InputMessage, JsonSchemaFormat, ReasoningItem)

JSON_CONTENT = "<|constrain|>json"


def system_message(effort: str) -> Message:
    return Message.from_role_and_content(Role.SYSTEM,
                                         SystemContent.new().with_reasoning_effort(effort))


def developer_message(instructions: str | None, tools: list[FunctionDef],
                      response_format: JsonSchemaFormat | None = None) -> Message | None:
    if not instructions and not tools and response_format is None:
        return None
    content = DeveloperContent.new()
    if instructions:
        content = content.with_instructions(instructions)
    if tools:
        content = content.with_function_tools([
            ToolDescription.new(t.name, t.description or "", parameters=t.parameters)
            for t in tools])
    if response_format is not None:
        content = content.with_response_format(response_format.name, response_format.schema_,
                                               response_format.description)
    return Message.from_role_and_content(Role.DEVELOPER, content)


def build_conversation(effort: str, instructions: str | None, tools: list[FunctionDef],
                       history: Iterable[Message],
                       response_format: JsonSchemaFormat | None = None) -> Conversation:
    head = [system_message(effort)]
    dev = developer_message(instructions, tools, response_format)
    if dev is not None:
        head.append(dev)
    return Conversation.from_messages(head + list(history))


def tool_call_message(name: str, arguments: str) -> Message:
    return (Message.from_role_and_content(Role.ASSISTANT, arguments or "{}")
            .with_channel("commentary").with_recipient(f"functions.{name}")
            .with_content_type(JSON_CONTENT))


def tool_result_message(name: str, output: str) -> Message:
    return (Message.from_author_and_content(Author.new(Role.TOOL, f"functions.{name}"), output)
            .with_channel("commentary").with_recipient("assistant"))


def assistant_text(channel: str, text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


def chat_history(messages: list[ChatMessage]) -> tuple[str | None, list[Message]]:
    """Chat messages -> (developer instructions, Harmony history)."""
    instructions: list[str] = []
    history: list[Message] = []
    call_names: dict[str, str] = {}
    for index, msg in enumerate(messages):
        where = f"messages.{index}"
        if msg.role in ("system", "developer"):
            instructions.append(msg.text())
        elif msg.role == "user":
            history.append(Message.from_role_and_content(Role.USER, msg.text()))
        elif msg.role == "assistant":
            reasoning = msg.reasoning_content or msg.reasoning
            if reasoning:
                history.append(assistant_text("analysis", reasoning))
            for call in msg.tool_calls or ():
                call_names[call.id] = call.function.name
                history.append(tool_call_message(call.function.name, call.function.arguments))
            if msg.text():
                history.append(assistant_text("final", msg.text()))
        else:  # tool
            name = msg.name or call_names.get(msg.tool_call_id or "")
            if name is None:
                raise ApiError(f"'{where}.tool_call_id' {msg.tool_call_id!r} matches no earlier "
                               "assistant tool call", param=f"{where}.tool_call_id")
            history.append(tool_result_message(name, msg.text()))
    return ("\n\n".join(i for i in instructions if i) or None), history


def responses_history(items, call_names: dict[str, str] | None = None
                      ) -> tuple[str | None, list[Message]]:
    """Responses `input` (a string or items) -> (extra instructions, Harmony history).
    `call_names` maps call ids of earlier responses to function names."""
    if isinstance(items, str):
        return None, [Message.from_role_and_content(Role.USER, items)]
    call_names = dict(call_names or {})
    instructions: list[str] = []
    history: list[Message] = []
    for index, item in enumerate(items):
        if isinstance(item, InputMessage):
            if item.role in ("system", "developer"):
                instructions.append(item.text())
            elif item.role == "user":
                history.append(Message.from_role_and_content(Role.USER, item.text()))
            else:
                history.append(assistant_text("final", item.text()))
        elif isinstance(item, ReasoningItem):
            text = "".join(part.text for part in (item.content or item.summary or ()))
            if text:
                history.append(assistant_text("analysis", text))
        elif isinstance(item, FunctionCallItem):
            call_names[item.call_id] = item.name
            history.append(tool_call_message(item.name, item.arguments))
        elif isinstance(item, FunctionCallOutputItem):
            name = call_names.get(item.call_id)
            if name is None:
                raise ApiError(f"'input.{index}.call_id' {item.call_id!r} matches no function "
                               "call", param=f"input.{index}.call_id")
            history.append(tool_result_message(name, item.output))
    return ("\n\n".join(i for i in instructions if i) or None), history
