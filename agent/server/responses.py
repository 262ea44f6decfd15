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
from agent.server.mcp_tools import Offered
from agent.harmony.conversation import tool_result_message
from agent.results import find_citations
from agent.server.schemas import BUILTIN_TOOLS, FunctionDef, ResponsesRequest
from agent.server.state import ServerState, StoredResponse, cache_scope
from agent.server.watch import until_disconnected

router = APIRouter()


BUILTIN_ITEMS = {"browser": "web_search_call", "python": "code_interpreter_call"}


class OutputItems:
    """Turns deltas into Responses output items, and the events that announce them."""

    def __init__(self, mcp: dict[str, tuple[str, str]] | None = None):
        self.items: list[dict] = []
        self._open: dict | None = None
        self.arguments: dict[str, str] = {}  # built-in call item id -> its arguments so far
        self.mcp = mcp or {}                 # MCP function name -> (server label, tool name)

    def feed(self, delta: Delta) -> list[dict]:
        events: list[dict] = []
        kind = {"reasoning": "reasoning", "content": "message"}.get(delta.kind, "call")
        open_kind = self._open and self._open["type"]
        if open_kind not in (None, "reasoning", "message"):
            open_kind = "call"
        if open_kind != kind or delta.kind == "tool_call":
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
        elif item["type"] != "function_call":
            self.arguments[item["id"]] += delta.text
        elif delta.text:
            item["arguments"] += delta.text
            events.append({"type": "response.function_call_arguments.delta",
                           "item_id": item["id"], "output_index": index, "delta": delta.text})
        return events

    def tool_ran(self, item: dict, recipient: str, result) -> list[dict]:
        """Fill a built-in call item with what the tool did; the events that say so."""
        arguments = self.arguments.get(item["id"], "")
        if item["type"] == "code_interpreter_call":
            item.update(code=arguments, container_id="local",
                        outputs=[{"type": "logs", "logs": result.text}])
        elif item["type"] == "mcp_call":
            item.update(arguments=arguments, output=None if result.error else result.text,
                        error=result.text if result.error else None)
        else:
            item["action"] = _browser_action(recipient, arguments, result)
        item["status"] = "failed" if result.error else "completed"
        index = self.items.index(item)
        done = "failed" if item["type"] == "mcp_call" and result.error else "completed"
        return [{"type": f"response.{item['type']}.{done}", "item_id": item["id"],
                 "output_index": index},
                {"type": "response.output_item.done", "output_index": index, "item": item}]

    def listed(self, item: dict) -> list[dict]:
        """A finished item placed as it is (an MCP server's tool list)."""
        self.items.append(item)
        index = len(self.items) - 1
        return [{"type": "response.output_item.added", "output_index": index, "item": item},
                {"type": "response.output_item.done", "output_index": index, "item": item}]

    def _add(self, kind: str, delta: Delta) -> list[dict]:
        if kind == "reasoning":
            item = {"type": "reasoning", "id": new_id("rs"), "summary": [],
                    "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"}
        elif kind == "message":
            item = {"type": "message", "id": new_id("msg"), "role": "assistant",
                    "status": "in_progress",
                    "content": [{"type": "output_text", "text": "", "annotations": [],
                                 "logprobs": []}]}
        elif delta.name in self.mcp:
            label, name = self.mcp[delta.name]
            item = {"type": "mcp_call", "id": new_id("mcp"), "server_label": label,
                    "name": name, "arguments": "", "output": None, "error": None,
                    "status": "in_progress"}
            self.arguments[item["id"]] = ""
        elif delta.name.split(".")[0] in BUILTIN_ITEMS:
            kind = BUILTIN_ITEMS[delta.name.split(".")[0]]
            item = {"type": kind, "id": new_id("ws" if kind == "web_search_call" else "ci"),
                    "status": "in_progress"}
            self.arguments[item["id"]] = ""
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
        index = self.items.index(item)
        if item["id"] in self.arguments:   # a built-in call: done once its tool has run
            return [{"type": f"response.{item['type']}.in_progress", "item_id": item["id"],
                     "output_index": index}]
        item["status"] = "completed"
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


MAX_TOOL_ROUNDS = 8  # built-in tool calls the server runs for one response


class ResponseRun:
    """One /v1/responses request: generations until an answer or a function call, with the
    built-in tools (web search, code interpreter) run here in between."""

    def __init__(self, state: ServerState, req: ResponsesRequest, scope=None):
        state.check_model(req.model)
        self.state, self.req, self.scope = state, req, scope
        earlier, self.call_names = [], {}
        if req.previous_response_id:
            stored = state.responses.get(req.previous_response_id)
            if stored is None:
                raise ApiError(f"Previous response with id '{req.previous_response_id}' not found.",
                               status=404, param="previous_response_id", type="not_found_error")
            earlier, self.call_names = list(stored.history), dict(stored.call_names)
        extra, new = responses_history(req.input, self.call_names)
        for item in req.input if isinstance(req.input, list) else ():
            if getattr(item, "type", "") == "function_call":
                self.call_names[item.call_id] = item.name
        offered = [t for t in req.tools or ()] if req.tool_choice != "none" else []
        self.tools = [FunctionDef(name=t.name, description=t.description, parameters=t.parameters)
                      for t in offered if t.type == "function"]
        kinds = {BUILTIN_TOOLS[t.type] for t in offered if t.type in BUILTIN_TOOLS}
        self.builtins = state.builtin_tools(kinds) if kinds else None
        requested = [(i, t) for i, t in enumerate(offered) if t.type == "mcp"]
        self.mcp = Offered(state.mcp_servers, requested) if requested else None
        if self.mcp is not None:
            clash = sorted(set(self.mcp.labels) & {t.name for t in self.tools})
            if clash:
                raise ApiError(f"function {clash[0]!r} is also an offered MCP tool", param="tools")
            self.tools += [FunctionDef(name=t.name, description=t.description,
                                       parameters=t.schema) for t in self.mcp.tools]
            self.builtins = self.builtins or state.builtin_tools(set())
            for tool in self.mcp.tools:
                self.builtins.add(tool)     # run here; the server stays connected after
        self.instructions = "\n\n".join(i for i in (req.instructions, extra) if i) or None
        self.history = earlier + new
        self.pages: dict[int, dict] = {}
        self.generations: list[Generation] = []
        self.gen = self._generation()  # the first one validates the request before any output

    def _generation(self) -> Generation:
        req = self.req
        used = sum(g.decoder.generated for g in self.generations)
        limit = None if req.max_output_tokens is None else max(1, req.max_output_tokens - used)
        gen = self.state.harmony_generation(
            effort=(req.reasoning and req.reasoning.effort) or "medium",
            instructions=self.instructions, tools=self.tools, history=self.history,
            tool_choice=req.tool_choice if not self.generations else None,
            max_tokens=limit, max_tokens_param="max_output_tokens",
            temperature=req.temperature, top_p=req.top_p, seed=req.seed,
            response_format=structured(req.text and req.text.format, "text.format"),
            format_param="text.format", builtins=self.builtins, cache_scope=self.scope)
        self.generations.append(gen)
        return gen

    async def events(self, items: "OutputItems"):
        """Output item events as the turn goes on; the last generation is self.gen."""
        try:
            for label, tools in self.mcp.listings if self.mcp is not None else ():
                for body in items.listed(self.mcp.list_item(label, tools, new_id("mcpl"))):
                    yield body
            for round_ in range(MAX_TOOL_ROUNDS + 1):
                gen = self.gen if round_ == 0 else self._generation()
                self.gen = gen
                async for delta in gen.deltas():
                    for body in items.feed(delta):
                        yield body
                self.history += gen.decoder.turn.messages
                calls = gen.decoder.turn.calls
                call = calls[-1] if calls else None
                if (call is None or self.builtins is None or gen.decoder.finish_reason == "length"
                        or call.recipient not in self.builtins.argument_schemas()):
                    break
                item = items.items[-1]
                for body in items.close():
                    yield body
                result = await self.builtins.call(call.recipient, call.arguments)
                if isinstance(result.data, dict) and "cursor" in result.data:
                    self.pages[int(result.data["cursor"])] = result.data
                for body in items.tool_ran(item, call.recipient, result):
                    yield body
                self.history.append(tool_result_message(
                    self.builtins.author_for(call.recipient), result.text,
                    call.channel or "commentary"))
        finally:
            if self.builtins is not None:
                await self.builtins.close()

    def mcp_names(self) -> dict[str, tuple[str, str]]:
        return self.mcp.names() if self.mcp is not None else {}

    def finish(self, ident: str, items: "OutputItems") -> str:
        """Citations on the answer; remembers the turn for previous_response_id; the status."""
        for item in items.items:
            if item["type"] == "message":
                part = item["content"][0]
                part["annotations"] = url_citations(part["text"], self.pages)
        for gen in self.generations:
            for call in gen.decoder.tool_calls:
                self.call_names[call.call_id] = call.name
        if self.req.store:
            self.state.store(ident, StoredResponse(self.history, self.call_names))
        return "incomplete" if self.gen.decoder.finish_reason == "length" else "completed"

    def usage(self) -> dict:
        totals: dict = {}
        for gen in self.generations:
            for key, value in gen.responses_usage().items():
                if isinstance(value, dict):
                    inner = totals.setdefault(key, {})
                    for k, v in value.items():
                        inner[k] = inner.get(k, 0) + v
                else:
                    totals[key] = totals.get(key, 0) + value
        return totals


def url_citations(text: str, pages: dict[int, dict]) -> list[dict]:
    """`【cursor†Lx-Ly】` markers of browser pages -> url_citation annotations."""
    if not pages:
        return []
    out = []
    for citation in find_citations(text, pages):
        if citation.url:
            start = text.find(citation.marker)
            out.append({"type": "url_citation", "start_index": start,
                        "end_index": start + len(citation.marker), "url": citation.url,
                        "title": citation.title or citation.url})
    return out


def _browser_action(recipient: str, arguments: str, result) -> dict:
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = {}
    args = args if isinstance(args, dict) else {}
    data = result.data if isinstance(result.data, dict) else {}
    if recipient == "browser.search":
        return {"type": "search", "query": str(args.get("query", ""))}
    if recipient == "browser.find":
        return {"type": "find", "pattern": str(args.get("pattern", "")),
                "url": data.get("url")}
    return {"type": "open_page", "url": data.get("url") or str(args.get("id", ""))}


def response_body(req: ResponsesRequest, ident: str, created: int, items: list[dict],
                  run: ResponseRun | None, status: str) -> dict:
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
        "usage": run.usage() if run is not None else None,
    }
    if body["tool_choice"] is None:
        body["tool_choice"] = "auto"
    return body


@router.post("/v1/responses")
async def create_response(req: ResponsesRequest, request: Request):
    state: ServerState = request.app.state.server
    run = ResponseRun(state, req, cache_scope(request, req.cache_salt))
    ident, created = new_id("resp"), int(time.time())
    if req.stream:
        return StreamingResponse(stream(run, ident, created), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    items = OutputItems(run.mcp_names())

    async def collect():
        async for _ in run.events(items):
            pass
    await until_disconnected(request, collect())
    items.close()
    status = run.finish(ident, items)
    return response_body(req, ident, created, items.items, run, status)


async def stream(run: ResponseRun, ident: str, created: int):
    seq = 0
    req = run.req

    def event(body: dict) -> bytes:
        nonlocal seq
        body = {**body, "sequence_number": seq}
        seq += 1
        return f"event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()

    items = OutputItems(run.mcp_names())
    shell = response_body(req, ident, created, [], None, "in_progress")
    yield event({"type": "response.created", "response": shell})
    yield event({"type": "response.in_progress", "response": shell})
    try:
        async for body in run.events(items):
            yield event(body)
    except ApiError as err:
        yield event({"type": "error", "code": err.code, "message": err.message, "param": err.param})
        return
    for body in items.close():
        yield event(body)
    status = run.finish(ident, items)
    kind = "response.completed" if status == "completed" else "response.incomplete"
    yield event({"type": kind,
                 "response": response_body(req, ident, created, items.items, run, status)})
