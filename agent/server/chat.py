"""POST /v1/chat/completions: plain and streamed (SSE), tool calls, reasoning, usage."""
from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from agent.harmony.tokenizer import get_encoding
from agent.server.conversation import chat_history
from agent.server.decode import new_id
from agent.server.errors import ApiError, sse_error
from agent.server.generation import Generation
from agent.server.schemas import ChatCompletionRequest
from agent.server.state import ServerState, cache_scope
from agent.server.watch import until_disconnected

router = APIRouter()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def start(state: ServerState, req: ChatCompletionRequest, scope=None) -> Generation:
    state.check_model(req.model)
    tools = [t.function for t in req.tools or ()] if req.tool_choice != "none" else []
    instructions, history = chat_history(req.messages)
    stop = [req.stop] if isinstance(req.stop, str) else (req.stop or [])
    limit_param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
    return state.harmony_generation(
        effort=req.reasoning_effort or "medium", instructions=instructions, tools=tools,
        history=history, tool_choice=req.tool_choice,
        max_tokens=req.max_completion_tokens or req.max_tokens, max_tokens_param=limit_param,
        temperature=req.temperature, top_p=req.top_p, seed=req.seed, stop=stop,
        logprobs=req.logprobs, response_format=structured(req.response_format, "response_format"),
        cache_scope=scope)


def structured(fmt, param: str):
    """The JSON schema a response_format asks for (None for plain text)."""
    if fmt is None:
        return None
    try:
        return fmt.structured()
    except ValueError as exc:
        raise ApiError(str(exc), param=param) from None


def logprobs_body(gen: Generation) -> dict | None:
    if not gen.params.logprobs:
        return None
    enc = get_encoding()
    content = []
    for token, logprob in gen.logprobs:
        raw = enc.decode_single_token_bytes(token)
        content.append({"token": raw.decode("utf-8", "replace"), "logprob": logprob,
                        "bytes": list(raw), "top_logprobs": []})
    return {"content": content}


def message_body(gen: Generation) -> dict:
    d = gen.decoder
    message: dict = {"role": "assistant", "content": "".join(d.content) or None}
    if d.reasoning:
        message["reasoning_content"] = message["reasoning"] = "".join(d.reasoning)
    if d.tool_calls:
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for c in d.tool_calls]
    return message


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest, request: Request):
    state: ServerState = request.app.state.server
    gen = start(state, req, cache_scope(request, req.cache_salt))
    ident, created = new_id("chatcmpl"), int(time.time())
    if req.stream:
        return StreamingResponse(stream(gen, ident, created, req.model, req.include_usage),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    await until_disconnected(request, gen.run())
    return {"id": ident, "object": "chat.completion", "created": created, "model": req.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message_body(gen), "logprobs": logprobs_body(gen),
                         "finish_reason": gen.decoder.finish_reason}],
            "usage": gen.usage()}


def delta_body(delta) -> dict:
    if delta.kind == "reasoning":
        return {"reasoning_content": delta.text, "reasoning": delta.text}
    if delta.kind == "content":
        return {"content": delta.text}
    call: dict = {"index": delta.index, "function": {"arguments": delta.text}}
    if delta.kind == "tool_call":
        call.update(id=delta.call_id, type="function",
                    function={"name": delta.name, "arguments": ""})
    return {"tool_calls": [call]}


async def stream(gen: Generation, ident: str, created: int, model: str, include_usage: bool):
    head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None}

    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**head, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for delta in gen.deltas():
            yield chunk(delta_body(delta))
    except ApiError as err:
        yield sse_error(err)
        yield sse("[DONE]")
        return
    yield chunk({}, gen.decoder.finish_reason)
    if include_usage:
        yield sse({**head, "choices": [], "usage": gen.usage()})
    yield sse("[DONE]")
