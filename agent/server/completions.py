"""POST /v1/completions with raw Harmony token prompts (the vLLM/SGLang convention).

This is the endpoint a client with its own Harmony renderer and parser uses (the agent's
remote backend does): the prompt is a list of token ids, the output comes back as text and,
with `return_token_ids`, as token ids. Like vLLM for gpt-oss, generation stops at
<|return|>, <|call|> and <|endoftext|> (unless `ignore_eos`) plus any `stop_token_ids`; the
stop token is reported in `stop_reason`, not in the text or ids. As with vLLM's guidance
backend, `structured_outputs.grammar` (an llguidance Lark grammar, such as the agent's turn
grammar) is followed token by token where the backend takes a constraint.
"""
from __future__ import annotations

import codecs
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from agent.harmony.conversation import tools_free_turn
from agent.harmony.grammar import GrammarConstraint, GrammarError, constraint_for
from agent.harmony.tokenizer import STARTOFTEXT, VOCAB_SIZE, get_encoding
from agent.server.chat import SSE_HEADERS, sse
from agent.server.decode import StopMatcher, new_id
from agent.server.engine import Finished, Params
from agent.server.errors import ApiError, sse_error
from agent.server.schemas import CompletionRequest
from agent.server.state import ASSISTANT_STOPS, ServerState, cache_scope
from agent.server.watch import until_disconnected

router = APIRouter()


class RawRun:
    """One raw completion: generated ids, visible text, logprobs, why it ended."""

    def __init__(self, state: ServerState, req: CompletionRequest, scope=None):
        state.check_model(req.model)
        enc = get_encoding()
        self.prompt = list(req.prompt) if isinstance(req.prompt, list) else \
            list(enc.encode(req.prompt, allowed_special="all"))
        bad = next((t for t in self.prompt if t >= VOCAB_SIZE), None)
        if bad is not None:
            raise ApiError(f"'prompt' has token id {bad}, outside the vocabulary (0..{VOCAB_SIZE - 1})",
                           param="prompt")
        extra = [t for t in req.stop_token_ids or () if not 0 <= t < VOCAB_SIZE]
        if extra:
            raise ApiError(f"'stop_token_ids' has id {extra[0]} outside the vocabulary",
                           param="stop_token_ids")
        stops = tuple(req.stop_token_ids or ()) + (() if req.ignore_eos else ASSISTANT_STOPS)
        self.stop_ids = set(stops)
        budget = state.budget(len(self.prompt), req.max_tokens, "max_tokens")
        self.params = Params(max_tokens=budget, stop=stops,
                             temperature=1.0 if req.temperature is None else req.temperature,
                             top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed,
                             logprobs=req.logprobs is not None,
                             constraint=grammar_constraint(state, req.structured_outputs,
                                                           self.prompt, budget),
                             cache_scope=scope)
        self.req, self.state, self.enc = req, state, enc
        self.stops = StopMatcher([req.stop] if isinstance(req.stop, str) else req.stop or [])
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self.ids: list[int] = []
        self.text: list[str] = []
        self.logprobs: list[tuple[int, float | None]] = []
        self.stop_reason: int | str | None = None
        self.usage: dict = {}

    def token_text(self, token: int) -> str:
        if token >= STARTOFTEXT and self.req.skip_special_tokens:
            return ""
        return self.utf8.decode(self.enc.decode_single_token_bytes(token))

    def step(self, token: int, logprob: float | None) -> tuple[list[int], str]:
        """Accepts one generated token; returns the ids and text it adds to the output."""
        if token in self.stop_ids:
            self.stop_reason = token
            return [], ""
        self.ids.append(token)
        self.logprobs.append((token, logprob))
        visible, hit = self.stops.feed(self.token_text(token))
        if hit:
            self.stop_reason = self.stops.matched
        self.text.append(visible)
        return [token], visible

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def flush(self) -> str:
        rest = "" if self.done else self.stops.flush() + self.utf8.decode(b"", final=True)
        self.text.append(rest)
        return rest

    @property
    def finish_reason(self) -> str:
        return "stop" if self.done else "length"

    def logprobs_body(self, pairs) -> dict | None:
        if self.req.logprobs is None:
            return None
        tokens = [self.enc.decode_single_token_bytes(t).decode("utf-8", "replace") for t, _ in pairs]
        return {"tokens": tokens, "token_logprobs": [lp for _, lp in pairs],
                "top_logprobs": None, "text_offset": []}

    def usage_body(self) -> dict:
        stop_token = isinstance(self.stop_reason, int)  # generated, though not in the output
        prompt = int(self.usage.get("prompt_tokens") or len(self.prompt))  # as the model read it
        generated = len(self.ids) + stop_token
        return {"prompt_tokens": prompt, "completion_tokens": generated,
                "total_tokens": prompt + generated,
                "prompt_tokens_details": {"cached_tokens": int(self.usage.get("reused_tokens", 0))}}

    async def tokens(self):
        """(new ids, new text, (token, logprob) pairs) per generated token."""
        handle = self.state.engine.submit(self.prompt, self.params)
        try:
            async for item in handle:
                if isinstance(item, Finished):
                    self.usage = item.usage
                    if item.error and item.error != "cancelled":
                        raise ApiError(f"generation failed: {item.error}", status=500,
                                       type="server_error")
                    break
                if self.done:
                    continue
                ids, text = self.step(item.token, item.logprob)
                yield ids, text, self.logprobs[-1:] if ids else []
                if self.done:
                    handle.cancel()
            rest = self.flush()
            if rest:
                yield [], rest, []
        finally:
            handle.cancel()


def grammar_constraint(state: ServerState, structured, prompt: list[int], budget: int):
    """The request's grammar as a constraint; a 400 naming the field when it cannot be one.
    Without one, a Harmony assistant turn whose prompt declares no tools may only answer (on
    a backend that takes a constraint): no tool name can be generated."""
    if structured is None or structured.grammar is None:
        if getattr(state.engine.backend, "takes_constraint", False) and tools_free_turn(prompt):
            return constraint_for({}, budget=budget)
        return None
    param = "structured_outputs.grammar"
    if not getattr(state.engine.backend, "takes_constraint", False):
        raise ApiError("this server's backend cannot follow a grammar", param=param)
    try:
        return GrammarConstraint(structured.grammar)
    except GrammarError as exc:
        raise ApiError(f"'{param}' does not compile: {str(exc).strip().splitlines()[0]}",
                       param=param) from None


def choice(run: RawRun, ids: list[int], text: str, pairs, finish: str | None) -> dict:
    body = {"index": 0, "text": text, "logprobs": run.logprobs_body(pairs),
            "finish_reason": finish,
            "stop_reason": run.stop_reason if finish else None}
    if run.req.return_token_ids:
        body["token_ids"] = ids
    return body


@router.post("/v1/completions")
async def completions(req: CompletionRequest, request: Request):
    state: ServerState = request.app.state.server
    run = RawRun(state, req, cache_scope(request, req.cache_salt))
    ident, created = new_id("cmpl"), int(time.time())
    head = {"id": ident, "object": "text_completion", "created": created, "model": req.model}
    if req.stream:
        return StreamingResponse(stream(run, head, req.include_usage), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    async def collect():
        async for _ in run.tokens():
            pass
    await until_disconnected(request, collect())
    body = {**head, "choices": [choice(run, run.ids, "".join(run.text), run.logprobs,
                                       run.finish_reason)], "usage": run.usage_body()}
    if req.return_token_ids:
        body["choices"][0]["prompt_token_ids"] = run.prompt
    return body


async def stream(run: RawRun, head: dict, include_usage: bool):
    first = True
    try:
        async for ids, text, pairs in run.tokens():
            body = choice(run, ids, text, pairs, None)
            if first and run.req.return_token_ids:
                body["prompt_token_ids"] = run.prompt
            first = False
            yield sse({**head, "choices": [body]})
    except ApiError as err:
        yield sse_error(err)
        yield sse("[DONE]")
        return
    yield sse({**head, "choices": [choice(run, [], "", [], run.finish_reason)]})
    if include_usage:
        yield sse({**head, "choices": [], "usage": run.usage_body()})
    yield sse("[DONE]")
