"""POST /v1/responses (subset): input items, instructions, function tools, reasoning.effort,
previous_response_id, and the streaming event sequence the official clients consume."""
from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from agent.server.chat import structured
from agent.server.conversation import responses_history
from agent.server.decode import Delta, new_id
from agent.server.errors import ApiError
from agent.server.generation import Generation
from agent.server.schemas import FunctionDef, ResponsesRequest
from agent.server.state import ServerState, StoredResponse
from agent.server.watch import until_disconnected

router = APIRouter()


class OutputItems:
    """Turns deltas into Responses output items, and the events that announce them."""

    def __init__(self):
        self.items: list[dict] = []
        self._open: dict | None = None

    def feed(self, delta: Delta) -> list[dict]:
        events: list[dict] = []
        kind = {"reasoning": "reasoning", "content": "message"}.get(delta.kind, "function_call")
        if self._open is None or self._open["type"] != kind or delta.kind == "tool_call":
            events += self.close()
            events += self._add(kind, delta)
        item, index = self._open, len(self.items) - 1
        if kind == "reasoning":
            item["content"][0]["text"] += delta.text
            events.append({"type": "response.reasoning_text.delta", "item_id": item["id"],
                           "output_index": index, "content_index": 0, "delta": delta.text})
        elif kind == "message":
            item["content"][0]["text"] += delta.text
            events.append({"type": "response.output_text.delta", "item_id": item["id"],
                           "output_index": index, "content_index": 0, "delta": delta.text,
                           "logprobs": []})
        elif delta.text:
            item["arguments"] += delta.text
            events.append({"type": "response.function_call_arguments.delta",
                           "item_id": item["id"], "output_index": index, "delta": delta.text})
        return events

    def _add(self, kind: str, delta: Delta) -> list[dict]:
        if kind == "reasoning":
            item = {"type": "reasoning", "id": new_id("rs"), "summary": [],
                    "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"}
        elif kind == "message":
            item = {"type": "message", "id": new_id("msg"), "role": "assistant",
                    "status": "in_progress",
                    "content": [{"type": "output_text", "text": "", "annotations": [],
                                 "logprobs": []}]}
        else:
            item = {"type": "function_call", "id": new_id("fc"), "call_id": delta.call_id,
                    "name": delta.name, "arguments": "", "status": "in_progress"}
        self.items.append(item)
        self._open = item
        index = len(self.items) - 1
        shown = {**item, "content": []} if "content" in item else dict(item)
        events = [{"type": "response.output_item.added", "output_index": index, "item": shown}]
        if kind == "message":
            events.append({"type": "response.content_part.added", "item_id": item["id"],
                           "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": []}})
        return events

    def close(self) -> list[dict]:
        item, self._open = self._open, None
        if item is None:
            return []
        item["status"] = "completed"
        index = self.items.index(item)
        events: list[dict] = []
        if item["type"] == "reasoning":
            events.append({"type": "response.reasoning_text.done", "item_id": item["id"],
                           "output_index": index, "content_index": 0,
                           "text": item["content"][0]["text"]})
        elif item["type"] == "message":
            part = item["content"][0]
            events.append({"type": "response.output_text.done", "item_id": item["id"],
                           "output_index": index, "content_index": 0, "text": part["text"],
                           "logprobs": []})
            events.append({"type": "response.content_part.done", "item_id": item["id"],
                           "output_index": index, "content_index": 0, "part": part})
        else:
            events.append({"type": "response.function_call_arguments.done",
                           "item_id": item["id"], "output_index": index, "name": item["name"],
                           "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        return events


def start(state: ServerState, req: ResponsesRequest) -> tuple[Generation, list, dict]:
    state.check_model(req.model)
    earlier, call_names = [], {}
    if req.previous_response_id:
        stored = state.responses.get(req.previous_response_id)
        if stored is None:
            raise ApiError(f"Previous response with id '{req.previous_response_id}' not found.",
                           status=404, param="previous_response_id", type="not_found_error")
        earlier, call_names = list(stored.history), dict(stored.call_names)
    extra, new = responses_history(req.input, call_names)
    for item in req.input if isinstance(req.input, list) else ():
        if getattr(item, "type", "") == "function_call":
            call_names[item.call_id] = item.name
    tools = [FunctionDef(name=t.name, description=t.description, parameters=t.parameters)
             for t in req.tools or ()] if req.tool_choice != "none" else []
    instructions = "\n\n".join(i for i in (req.instructions, extra) if i) or None
    history = earlier + new
    gen = state.harmony_generation(
        effort=(req.reasoning and req.reasoning.effort) or "medium", instructions=instructions,
        tools=tools, history=history, tool_choice=req.tool_choice,
        max_tokens=req.max_output_tokens, max_tokens_param="max_output_tokens",
        temperature=req.temperature, top_p=req.top_p, seed=req.seed,
        response_format=structured(req.text and req.text.format, "text.format"),
        format_param="text.format")
    return gen, history, call_names


def response_body(req: ResponsesRequest, ident: str, created: int, items: list[dict],
                  gen: Generation | None, status: str) -> dict:
    body = {
        "id": ident, "object": "response", "created_at": created, "model": req.model,
        "status": status, "output": items, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": req.instructions, "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": (req.reasoning and req.reasoning.effort) or "medium",
                      "summary": None},
        "tools": [t.model_dump(exclude_none=True) for t in req.tools or ()],
        "tool_choice": req.tool_choice if isinstance(req.tool_choice, str) or req.tool_choice is None
        else req.tool_choice.model_dump(),
        "parallel_tool_calls": False, "temperature": req.temperature, "top_p": req.top_p,
        "max_output_tokens": req.max_output_tokens, "store": req.store, "metadata": {},
        "text": {"format": req.text.format.model_dump(by_alias=True, exclude_none=True)
                 if req.text and req.text.format else {"type": "text"}},
        "truncation": "disabled",
        "usage": gen.responses_usage() if gen is not None else None,
    }
    if body["tool_choice"] is None:
        body["tool_choice"] = "auto"
    return body


def finish(state: ServerState, req: ResponsesRequest, ident: str, gen: Generation,
           history: list, call_names: dict) -> str:
    """Remembers the turn for previous_response_id; returns the response status."""
    for call in gen.decoder.tool_calls:
        call_names[call.call_id] = call.name
    if req.store:
        state.store(ident, StoredResponse(history + gen.decoder.turn.messages, call_names))
    return "incomplete" if gen.decoder.finish_reason == "length" else "completed"


@router.post("/v1/responses")
async def create_response(req: ResponsesRequest, request: Request):
    state: ServerState = request.app.state.server
    gen, history, call_names = start(state, req)
    ident, created = new_id("resp"), int(time.time())
    if req.stream:
        return StreamingResponse(stream(state, req, gen, ident, created, history, call_names),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    items = OutputItems()
    await until_disconnected(request, gen.run())
    for delta in _replay(gen):
        items.feed(delta)
    items.close()
    status = finish(state, req, ident, gen, history, call_names)
    return response_body(req, ident, created, items.items, gen, status)


def _replay(gen: Generation) -> list[Delta]:
    """The finished output as deltas, in Harmony order (reasoning, then text or a call)."""
    d = gen.decoder
    out = [Delta("reasoning", "".join(d.reasoning))] if d.reasoning else []
    if d.content:
        out.append(Delta("content", "".join(d.content)))
    for i, call in enumerate(d.tool_calls):
        out += [Delta("tool_call", index=i, call_id=call.call_id, name=call.name),
                Delta("tool_args", call.arguments, index=i, call_id=call.call_id)]
    return out


async def stream(state: ServerState, req: ResponsesRequest, gen: Generation, ident: str,
                 created: int, history: list, call_names: dict):
    seq = 0

    def event(body: dict) -> bytes:
        nonlocal seq
        body = {**body, "sequence_number": seq}
        seq += 1
        return f"event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()

    items = OutputItems()
    shell = response_body(req, ident, created, [], None, "in_progress")
    yield event({"type": "response.created", "response": shell})
    yield event({"type": "response.in_progress", "response": shell})
    try:
        async for delta in gen.deltas():
            for body in items.feed(delta):
                yield event(body)
    except ApiError as err:
        yield event({"type": "error", "code": err.code, "message": err.message, "param": err.param})
        return
    for body in items.close():
        yield event(body)
    status = finish(state, req, ident, gen, history, call_names)
    kind = "response.completed" if status == "completed" else "response.incomplete"
    yield event({"type": kind,
                 "response": response_body(req, ident, created, items.items, gen, status)})
