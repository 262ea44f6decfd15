"""The agent loop: render -> generate -> parse -> dispatch tool calls -> repeat.

`Agent` owns a backend (the model), a toolbox and a router. One *turn* answers one user task;
inside it the model may call tools many times (steps). Whatever goes wrong inside a turn --
an unknown tool, bad JSON arguments, a tool that raises, output that does not parse, a final
answer that fails validation -- goes back to the model as a message, and the limits (steps,
tokens, wall time) end the turn with a partial result and a stated reason.

With effort="auto" the router picks the starting effort, and a turn that ends badly is run
again one level up (see router.py and `_problems`).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Sequence

from agent import tracing
from agent.events import (CommentaryDelta, Done, EffortChosen, ErrorEvent, Event, FinalDelta,
                          ReasoningDelta, ToolCallStarted, ToolResultReceived, iterate_in_thread)
from agent.harmony.conversation import tool_result_message, user_message
from agent.harmony.stream import is_tool_call, message_text
from agent.results import EffortDecision, Result, ToolCall, Usage, find_citations
from agent.router import Router, router_for
from agent.tools.base import ToolResult
from agent.tools.toolset import ToolSet

log = logging.getLogger(__name__)
DECLINED = ("The user declined this call to {recipient}, so it did not run ({reason}). "
            "Do not call it again for this; go on without it or ask the user.")

if TYPE_CHECKING:
    from agent.session import Session

FIX_OUTPUT_PROMPT = ("Your final answer is not a valid `{name}` object: {error}\n"
                     "Reply with only the corrected JSON object, matching the `{name}` response format.")


@dataclass
class _Turn:
    """Mutable state of one attempt at a turn."""
    effort: str
    messages: list = field(default_factory=list)       # this turn's messages, user task first
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    final: str | None = None
    partial: str = ""
    reasoning: str = ""
    final_logprobs: list[float] = field(default_factory=list)
    stop_reason: str = "done"
    reason: str = ""
    output: Any = None
    unresolved: str | None = None      # a failed tool call not followed by a successful one
    parse_problem: str | None = None   # output we could not use, until a usable step follows
    pages: dict = field(default_factory=dict)
    model_s: float = 0.0
    tools_s: float = 0.0
    first_token_s: float | None = None


class Agent:
    """An agent on a gpt-oss model.

    model: None (the embedded nano model), a checkpoint folder or name, or a Backend object.
    tools: Tool objects, @tool functions, or the names "browser" / "python".
    effort: "auto" (routed, escalates), "low" | "medium" | "high" (fixed), or a Router.
    Limits per turn: max_steps generations, max_tokens generated tokens in all, max_time seconds.
    strict_tools: on a backend that can restrict tokens (the local runtime), generation
    follows the Harmony grammar of agent/harmony/grammar.py: a tool call can only name a
    declared tool, its JSON arguments match the tool's JSON Schema, and with `output=` the
    answer matches the model's schema; other backends ignore it.
    approve: called as approve(recipient, arguments) before each tool call; True runs it,
    False or a reason (a string) declines it, and the model is told so instead.
    tracer: an OpenTelemetry Tracer for the spans of agent/tracing.py (default: the global
    tracer, a no-op unless the application configured OpenTelemetry).
    """

    def __init__(self, model: Any = None, tools: Sequence[Any] = (), instructions: str | None = None,
                 effort: "str | Router" = "auto", *, max_steps: int = 12, max_tokens: int = 8192,
                 max_step_tokens: int = 2048, max_time: float | None = None,
                 temperature: float | None = None, top_p: float | None = None,
                 seed: int | None = None, device: str = "cpu", output_retries: int = 2, min_confidence: float | None = 0.35,
                 check: Callable[[Result], Any] | None = None, date: str | None = "today",
                 model_identity: str | None = None, strict_tools: bool = True,
                 progress: Callable[[float, str], None] | None = None,
                 approve: Callable[[str, str], "bool | str"] | None = None, tracer: Any = None):
        self.model = model
        self.instructions = instructions
        self.router = router_for(effort)
        self.effort = effort if isinstance(effort, str) else "custom"
        self.max_steps, self.max_tokens, self.max_step_tokens = max_steps, max_tokens, max_step_tokens
        self.max_time = max_time
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.device = device
        self.output_retries = output_retries
        self.min_confidence = min_confidence
        self.check = check
        self.date = datetime.date.today().isoformat() if date == "today" else date
        self.model_identity = model_identity
        self.progress = progress
        self.strict_tools = strict_tools
        self.approve = approve
        self.tracer = tracer if tracer is not None else tracing.get_tracer()
        self.toolset = ToolSet(tools)
        self._backend = model if callable(getattr(model, "complete", None)) else None
        if strict_tools and _may_take_constraint(model):
            from agent.harmony.grammar import warm_up
            warm_up()  # the grammar's tokenizer builds while torch and the weights load
        self._backend_lock = threading.Lock()
        self.load_seconds: float | None = None

    # ---- model -------------------------------------------------------------------------
    @property
    def backend(self):
        """The backend, loading the checkpoint on first use."""
        with self._backend_lock:
            if self._backend is None:
                from agent.backends import open_backend
                started = time.perf_counter()
                self._backend = open_backend(self.model, device=self.device, progress=self.progress)
                self.load_seconds = time.perf_counter() - started
            return self._backend

    def set_tools(self, tools: Sequence[Any]) -> None:
        self.toolset.close()
        self.toolset = ToolSet(tools)

    def close(self) -> None:
        self.toolset.close()

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- public API ----------------------------------------------------------------------
    def run(self, task: str, *, output: type | None = None, check: Callable | None = None,
            effort: "str | Router | None" = None) -> Result:
        """Run one task to the end and return its Result (`.output` holds the validated object
        when `output` is a pydantic model)."""
        result = None
        for event in self.stream(task, output=output, check=check, effort=effort):
            if isinstance(event, Done):
                result = event.result
        return result

    def stream(self, task: str, *, output: type | None = None, check: Callable | None = None,
               effort: "str | Router | None" = None, history: Sequence[Any] = (),
               on_turn: Callable[[list], None] | None = None) -> Iterator[Event]:
        """Yield events while the task runs; the last one is Done(result). The turn answers
        `task` after the Harmony `history` (a session's); `on_turn(messages)` receives the
        messages the turn added."""
        yield from self._run_turn(history, task, output=output, check=check, effort=effort,
                                  on_turn=on_turn)

    async def arun(self, task: str, **kwargs) -> Result:
        return await asyncio.to_thread(self.run, task, **kwargs)

    async def astream(self, task: str, **kwargs) -> AsyncIterator[Event]:
        async for event in iterate_in_thread(lambda: self.stream(task, **kwargs)):
            yield event

    def session(self, messages: Sequence[Any] = ()) -> "Session":
        from agent.session import Session
        return Session(self, messages)

    # ---- prompt --------------------------------------------------------------------------
    def system_message(self, effort: str):
        from agent.harmony.conversation import system_message
        return system_message(effort, date=self.date, identity=self.model_identity,
                              namespaces=self.toolset.system_namespaces())

    def developer_message(self, output: type | None = None):
        from agent.harmony.conversation import ResponseSchema, developer_message
        response = ResponseSchema(*_response_format(output)) if output is not None else None
        return developer_message(self.instructions, self.toolset.function_descriptions(), response)

    def prompt_messages(self, effort: str, history: Sequence[Any], output: type | None = None) -> list:
        from agent.harmony.conversation import prompt_messages
        return prompt_messages(self.system_message(effort), self.developer_message(output), history)

    # ---- the turn ------------------------------------------------------------------------
    def _run_turn(self, history: Sequence[Any], task: str, *, output: type | None = None,
                  check: Callable | None = None, effort: "str | Router | None" = None,
                  on_turn: Callable[[list], None] | None = None) -> Iterator[Event]:
        """One user task, with escalation. Yields events; `on_turn(messages)` receives the
        messages the final attempt added (the session appends them to its history)."""
        name = tracing.model_name(self.model, self._backend)
        with tracing.span(self.tracer, f"invoke_agent {tracing.AGENT_NAME}",
                          attributes=tracing.run_attributes(name, None)) as run:
            router = self.router if effort is None else router_for(effort)
            check = check or self.check
            started = time.perf_counter()
            decision = router.choose(task, tools=self.toolset.recipients())
            decisions = [EffortDecision(effort=decision.effort, reason=decision.reason, attempt=1)]
            usage = Usage()
            model_s = tools_s = 0.0
            while True:
                attempt = len(decisions)
                yield EffortChosen(effort=decision.effort, reason=decision.reason, attempt=attempt)
                turn = _Turn(effort=decision.effort, messages=[user_message(task)])
                with tracing.span(self.tracer, f"attempt {decision.effort}", run, attributes={
                        "gpt_oss_agent.effort": decision.effort, "gpt_oss_agent.attempt": attempt,
                        "gpt_oss_agent.effort_reason": decision.reason}) as attempt_span:
                    steps = self._attempt(list(history), turn, output=output, started=started)
                    yield from tracing.within(attempt_span, steps)
                    tracing.set_attributes(attempt_span, {"gpt_oss_agent.stop_reason": turn.stop_reason,
                                                          "gpt_oss_agent.steps": turn.steps})
                usage.add(turn.usage)
                model_s, tools_s = model_s + turn.model_s, tools_s + turn.tools_s
                result = self._result(history, turn, output, decisions, usage, started, model_s, tools_s)
                problems = self._problems(turn, result, check)
                result.errors.extend(problems)
                for problem in problems:
                    yield ErrorEvent(message=f"attempt {attempt} at {turn.effort}: {problem}")
                following = router.escalate(decision.effort, problems) if problems else None
                if following is None:
                    break
                log.info("attempt %d at %s effort ended badly (%s); escalating to %s", attempt,
                         turn.effort, "; ".join(problems), following.effort)
                decision = following
                decisions.append(EffortDecision(effort=decision.effort, reason=decision.reason,
                                                attempt=len(decisions) + 1))
            tracing.set_attributes(run, {**tracing.usage_attributes(usage.model_dump()),
                                         "gpt_oss_agent.effort": result.effort,
                                         "gpt_oss_agent.attempts": result.attempts,
                                         "gpt_oss_agent.stop_reason": result.stop_reason})
            if on_turn is not None:
                on_turn(turn.messages)
        yield Done(result=result)       # after the run's span ended: the caller may stop here

    def _attempt(self, history: list, turn: _Turn, *, output: type | None, started: float) -> Iterator[Event]:
        from agent.harmony.conversation import render_prompt
        fixes_left = self.output_retries
        while True:
            if turn.steps >= self.max_steps:
                return self._stop(turn, "max_steps", f"reached max_steps={self.max_steps} before a final answer")
            budget = self.max_tokens - turn.usage.generated_tokens
            if budget <= 0:
                return self._stop(turn, "max_tokens", f"used the max_tokens={self.max_tokens} budget before a final answer")
            if self._out_of_time(started):
                return self._stop(turn, "timeout", f"ran past max_time={self.max_time}s before a final answer")
            turn.steps += 1
            step_started = time.perf_counter()
            prompt = render_prompt(self.prompt_messages(turn.effort, history + turn.messages, output))
            try:
                decoder, timed_out = yield from self._generate(
                    prompt, min(budget, self.max_step_tokens), turn, started, output)
            except Exception as exc:  # a backend failure ends the turn, it does not crash the caller
                turn.model_s += time.perf_counter() - step_started
                yield ErrorEvent(message=f"model backend failed: {exc}")
                return self._stop(turn, "error", f"model backend failed: {type(exc).__name__}: {exc}")
            turn.model_s += time.perf_counter() - step_started
            messages, errors = decoder.messages, [e.reason for e in decoder.errors]
            turn.messages.extend(messages)
            if timed_out:
                return self._stop(turn, "timeout", f"ran past max_time={self.max_time}s while generating")

            calls = [m for m in messages if is_tool_call(m)]
            final = decoder.final
            if errors and (calls or final is not None):   # the parser repaired the output
                turn.errors.append(f"step {turn.steps} (repaired): " + "; ".join(errors))
            if calls or final is not None:
                turn.parse_problem = None
            for message in calls:
                yield from self._call_tool(message, turn)
            if calls and final is None:
                continue
            if final is not None:
                turn.final_logprobs = decoder.final_logprobs
                if output is None:
                    turn.final = final
                    return
                ok, value, error = _validate(output, final)
                if ok:
                    turn.final, turn.output = final, value
                    return
                turn.partial = final
                if fixes_left <= 0:
                    return self._stop(turn, "invalid_output", f"the final answer is not a valid {output.__name__}: {error}")
                fixes_left -= 1
                turn.errors.append(f"invalid output: {error}")
                yield ErrorEvent(message=f"final answer failed validation: {error}")
                turn.messages.append(user_message(FIX_OUTPUT_PROMPT.format(name=output.__name__, error=error)))
                continue
            # Neither a call nor a final answer: tell the model what went wrong and go on.
            problem = decoder.problem()
            turn.errors.append(f"step {turn.steps}: {problem}")
            turn.parse_problem = problem
            yield ErrorEvent(message=problem)
            turn.messages.append(tool_result_message(
                "parser", f"Your last output could not be used: {problem}. Continue in the "
                "Harmony format: think on the analysis channel, call a tool, or answer on the "
                "final channel."))

    def sampling(self, backend) -> tuple[float, float]:
        """temperature and top_p: the user's, else the checkpoint's recommendation (the
        embedded model decodes greedily), else gpt-oss's (1.0, 1.0)."""
        from agent.backends.base import sampling_for
        return sampling_for(backend, self.temperature, self.top_p)

    def _generate(self, prompt: list[int], max_tokens: int, turn: _Turn, started: float,
                  output: type | None = None):
        """Stream one completion through the turn decoder, turning deltas into events."""
        from agent.harmony.stream import TurnDecoder
        from agent.harmony.tokenizer import CALL, RETURN
        backend = self.backend
        decoder = TurnDecoder()
        timed_out = False
        temperature, top_p = self.sampling(backend)
        constraint = self._constraint(backend, output, max_tokens)
        model = tracing.model_name(self.model, backend)
        with tracing.span(self.tracer, f"chat {model}", kind=tracing.SpanKind.CLIENT,
                          attributes=tracing.chat_attributes(
                              model, tracing.provider_name(backend), max_tokens=max_tokens,
                              temperature=temperature, top_p=top_p, seed=self.seed)) as span:
            completion = backend.complete(prompt, max_tokens=max_tokens, stop=[RETURN, CALL],
                                          temperature=temperature, top_p=top_p,
                                          seed=self.seed, logprobs=self.min_confidence is not None,
                                          **({"constraint": constraint} if constraint else {}))
            try:
                for item in completion:
                    if turn.first_token_s is None:
                        turn.first_token_s = time.perf_counter() - started
                    for delta in decoder.feed(item.token, item.logprob):
                        event = _delta_event(delta)
                        if event is not None:
                            yield event
                    if self._out_of_time(started):
                        timed_out = True
                        break
                    if decoder.done:
                        break
            finally:
                close = getattr(completion, "close", None)
                if close is not None:
                    close()
            decoder.finish()
            usage = dict(getattr(backend, "last_usage", None) or {})
            if not usage.get("generated_tokens"):
                usage["generated_tokens"] = decoder.generated
            turn.usage.add(usage)
            tracing.set_attributes(span, tracing.finish_attributes(usage, decoder.stop_token))
            log.debug("model call: %d prompt tokens, %d generated", usage.get("prompt_tokens", 0),
                      usage["generated_tokens"])
        if constraint is not None and constraint.error:
            turn.errors.append(f"step {turn.steps}: generation left the grammar ({constraint.error})")
        if decoder.reasoning:
            turn.reasoning += ("\n" if turn.reasoning else "") + decoder.reasoning
        return decoder, timed_out

    def _constraint(self, backend, output: type | None, max_tokens: int):
        """The grammar of this step's completion, on backends that take one (the local
        runtime, remote engines): declared recipients only (none declared: no tool call at
        all), arguments and the answer by their schemas, everything inside the step's
        `max_tokens`."""
        if not (self.strict_tools and getattr(backend, "takes_constraint", False)):
            return None
        from agent.harmony.grammar import closed, constraint_for
        # a pydantic model ignores keys it does not declare: the answer gets none of them
        response_format = closed(_response_format(output)[1]) if output is not None else None
        return constraint_for(self.toolset.argument_schemas(), response_format=response_format,
                              budget=max_tokens)

    def _call_tool(self, message, turn: _Turn) -> Iterator[Event]:
        recipient, arguments = message.recipient, message_text(message)
        yield ToolCallStarted(recipient=recipient, input=arguments)
        started = time.perf_counter()
        with tracing.span(self.tracer, f"execute_tool {recipient}",
                          attributes=tracing.tool_attributes(recipient)) as span:
            verdict = True if self.approve is None else self.approve(recipient, arguments)
            if verdict is True:
                result = self.toolset.call(recipient, arguments)
                if result.error:
                    tracing.fail(span, "tool_error", result.text[:200])
            else:   # declined: reported to the model as the tool's answer; nothing ran
                reason = verdict if isinstance(verdict, str) and verdict else "no reason given"
                result = ToolResult(DECLINED.format(recipient=recipient, reason=reason), error=True)
                tracing.fail(span, "declined", reason)
                log.info("%s declined: %s", recipient, reason)
        turn.tools_s += time.perf_counter() - started
        turn.tool_calls.append(ToolCall(recipient=recipient, input=arguments, output=result.text,
                                        error=result.error, step=turn.steps))
        if verdict is True:     # a declined call is the user's decision, not a failure to fix
            turn.unresolved = f"{recipient} failed: {result.text[:200]}" if result.error else None
        if result.error:
            turn.errors.append(f"step {turn.steps}: {recipient}: {result.text[:300]}")
            log.info("step %d: %s: %s", turn.steps, recipient, result.text[:300])
        if isinstance(result.data, dict) and "cursor" in result.data:
            turn.pages[int(result.data["cursor"])] = result.data
        yield ToolResultReceived(recipient=recipient, output=result.text, error=result.error)
        turn.messages.append(tool_result_message(self.toolset.author_for(recipient), result.text,
                                                 message.channel or "commentary"))

    # ---- endings -------------------------------------------------------------------------
    def _stop(self, turn: _Turn, reason: str, sentence: str) -> None:
        turn.stop_reason, turn.reason = reason, sentence

    def _out_of_time(self, started: float) -> bool:
        return self.max_time is not None and time.perf_counter() - started > self.max_time

    def _result(self, history, turn: _Turn, output, decisions, usage, started, model_s, tools_s) -> Result:
        confidence = None
        if turn.final_logprobs:
            confidence = math.exp(sum(turn.final_logprobs) / len(turn.final_logprobs))
        final = turn.final if turn.final is not None else turn.partial
        messages = self.prompt_messages(turn.effort, list(history) + turn.messages, output)
        result = Result(
            final=final, effort=turn.effort, effort_reason=decisions[-1].reason,
            decisions=list(decisions), tool_calls=turn.tool_calls,
            messages=[m.to_dict() for m in messages], usage=usage.model_copy(),
            citations=find_citations(final, turn.pages), stop_reason=turn.stop_reason,
            reason=turn.reason, errors=list(turn.errors), reasoning=turn.reasoning,
            steps=turn.steps, attempts=len(decisions), confidence=confidence)
        result.output = turn.output
        result.timings.total_s = time.perf_counter() - started
        result.timings.model_s, result.timings.tools_s = model_s, tools_s
        result.timings.first_token_s = turn.first_token_s
        return result

    def _problems(self, turn: _Turn, result: Result, check: Callable | None) -> list[str]:
        """Why this attempt ended badly, as escalation triggers (empty when it ended well).
        Limits (steps, tokens, time) and backend failures are not triggers: more effort
        would spend more of what already ran out, or fail the same way."""
        if turn.stop_reason == "invalid_output":
            return [turn.reason]
        if turn.stop_reason != "done":
            return []
        problems = []
        if turn.unresolved or turn.parse_problem:
            problems.append(f"unresolved error before the answer: {turn.unresolved or turn.parse_problem}")
        if check is not None:
            try:
                verdict = check(result)
            except Exception as exc:
                verdict = f"check raised {type(exc).__name__}: {exc}"
            if verdict is False or isinstance(verdict, str):
                problems.append("check failed" + (f": {verdict}" if isinstance(verdict, str) else ""))
        if (self.min_confidence is not None and result.confidence is not None
                and result.confidence < self.min_confidence):
            problems.append(f"low confidence {result.confidence:.2f} < {self.min_confidence:.2f}")
        return problems


def _may_take_constraint(model: Any) -> bool:
    from agent.backends import is_recorded_script
    if callable(getattr(model, "complete", None)):
        return bool(getattr(model, "takes_constraint", False))
    return not is_recorded_script(model)


# ---- helpers -----------------------------------------------------------------------------

def _delta_event(delta) -> Event | None:
    """Deltas the user sees as events; tool-call arguments are shown once, complete, as
    ToolCallStarted."""
    if not delta.text:
        return None
    kind = {"reasoning": ReasoningDelta, "commentary": CommentaryDelta, "final": FinalDelta}
    return kind[delta.kind](text=delta.text) if delta.kind in kind else None


def _response_format(output: type) -> tuple[str, dict, str | None]:
    schema = output.model_json_schema()
    description = schema.pop("description", None) or (output.__doc__ or "").strip() or None
    schema.pop("title", None)
    return output.__name__, schema, description


def _validate(output: type, text: str) -> tuple[bool, Any, str]:
    """Parse the final answer as `output` (tolerating a ```json fence around it)."""
    from pydantic import ValidationError
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[-1] if "\n" in body else body[3:]
        body = body.rsplit("```", 1)[0]
    try:
        return True, output.model_validate_json(body.strip()), ""
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the object"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return False, None, f"{where}: {first.get('msg')}{more}"
    except Exception as exc:  # not JSON at all
        return False, None, f"not JSON ({exc})"
