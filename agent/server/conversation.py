"""OpenAI request messages -> a Harmony conversation (system, developer, history).

Chat `system`/`developer` messages become the developer message's instructions (gpt-oss keeps
its own system message for identity, effort and channels); assistant turns become analysis,
commentary tool calls (`to=functions.NAME`, JSON) and final messages; tool results become
messages authored by `functions.NAME`. The same history form serves /v1/responses.
"""
from __future__ import annotations

from typing import Iterable

from agent.harmony.conversation import (ResponseSchema, assistant_message, developer_message,
                                        prompt_messages, system_message, tool_call_message,
                                        tool_result_message, user_message)
from agent.harmony.messages import Message, ToolDescription
from agent.server.errors import ApiError
from agent.server.schemas import (ChatMessage, FunctionCallItem, FunctionCallOutputItem,
                                  FunctionDef, InputMessage, JsonSchemaFormat, ReasoningItem)


def build_messages(effort: str, instructions: str | None, tools: list[FunctionDef],
                   history: Iterable[Message],
                   response_format: JsonSchemaFormat | None = None,
                   namespaces: Iterable = ()) -> list[Message]:
    """The whole prompt's messages: gpt-oss's own system message (with the built-in tools'
    namespaces), the request's instructions, functions and response format as the developer
    message, then the history."""
    functions = [ToolDescription.new(t.name, t.description or "", parameters=t.parameters)
                 for t in tools]
    response = (ResponseSchema(response_format.name, response_format.schema_,
                               response_format.description) if response_format else None)
    return prompt_messages(system_message(effort, namespaces=namespaces),
                           developer_message(instructions, functions, response), history)


def function_call(name: str, arguments: str) -> Message:
    return tool_call_message(f"functions.{name}", arguments)


def function_result(name: str, output: str) -> Message:
    return tool_result_message(f"functions.{name}", output)


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
            history.append(user_message(msg.text()))
        elif msg.role == "assistant":
            reasoning = msg.reasoning_content or msg.reasoning
            if reasoning:
                history.append(assistant_message(reasoning, "analysis"))
            for call in msg.tool_calls or ():
                call_names[call.id] = call.function.name
                history.append(function_call(call.function.name, call.function.arguments))
            if msg.text():
                history.append(assistant_message(msg.text(), "final"))
        else:  # tool
            name = msg.name or call_names.get(msg.tool_call_id or "")
            if name is None:
                raise ApiError(f"'{where}.tool_call_id' {msg.tool_call_id!r} matches no earlier "
                               "assistant tool call", param=f"{where}.tool_call_id")
            history.append(function_result(name, msg.text()))
    return ("\n\n".join(i for i in instructions if i) or None), history


def responses_history(items, call_names: dict[str, str] | None = None
                      ) -> tuple[str | None, list[Message]]:
    """Responses `input` (a string or items) -> (extra instructions, Harmony history).
    `call_names` maps call ids of earlier responses to function names."""
    if isinstance(items, str):
        return None, [user_message(items)]
    call_names = dict(call_names or {})
    instructions: list[str] = []
    history: list[Message] = []
    for index, item in enumerate(items):
        if isinstance(item, InputMessage):
            if item.role in ("system", "developer"):
                instructions.append(item.text())
            elif item.role == "user":
                history.append(user_message(item.text()))
            else:
                history.append(assistant_message(item.text(), "final"))
        elif isinstance(item, ReasoningItem):
            text = "".join(part.text for part in (item.content or item.summary or ()))
            if text:
                history.append(assistant_message(text, "analysis"))
        elif isinstance(item, FunctionCallItem):
            call_names[item.call_id] = item.name
            history.append(function_call(item.name, item.arguments))
        elif isinstance(item, FunctionCallOutputItem):
            name = call_names.get(item.call_id)
            if name is None:
                raise ApiError(f"'input.{index}.call_id' {item.call_id!r} matches no function "
                               "call", param=f"input.{index}.call_id")
            history.append(function_result(name, item.output))
    return ("\n\n".join(i for i in instructions if i) or None), history
