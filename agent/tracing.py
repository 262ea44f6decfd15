"""OpenTelemetry spans for agent runs, named after the GenAI semantic conventions.

    invoke_agent gpt-oss-agent     one task: Agent.run / stream, or one Session turn
      attempt low                  one try at an effort (escalation adds a sibling)
        chat MODEL                 one model call: sampling settings, token usage, finish reason
        execute_tool NAME          one tool call, declined ones included

Spans go to the tracer the Agent is given, else to the global OpenTelemetry tracer, which is a
no-op until the application installs a TracerProvider: nothing is exported unless configured.
`json_lines_provider(path)` is the provider behind the command line's `--trace FILE`.

The loop is made of generators, so a span is never simply made "current" (it would leak into
the caller's code between two events): `within(span, steps)` makes it current only while the
generator `steps` runs, and the run and attempt spans name their parent explicitly.
Prompt and answer texts are not recorded (the conventions make content capture opt-in).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Generator, Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

AGENT_NAME = "gpt-oss-agent"
INSTRUMENTATION = "agent"


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The library's tracer on `provider` (default: the global, no-op unless configured)."""
    from agent import __version__
    return trace.get_tracer(INSTRUMENTATION, __version__, tracer_provider=provider)


@contextlib.contextmanager
def span(tracer: trace.Tracer, name: str, parent: Span | None = None, *,
         kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span under `parent`, ended on exit; an exception marks it as an error (a closed
    generator, e.g. a turn cancelled with Ctrl-C, as "cancelled") and propagates."""
    context = trace.set_span_in_context(parent) if parent is not None else None
    current = tracer.start_span(name, context=context, kind=kind,
                                attributes={k: v for k, v in (attributes or {}).items() if v is not None})
    try:
        yield current
    except GeneratorExit:
        fail(current, "cancelled")
        raise
    except BaseException as exc:
        fail(current, type(exc).__qualname__, str(exc))
        raise
    finally:
        current.end()


def within(span_: Span, steps: Generator) -> Generator:
    """Run the generator `steps` with `span_` current while it computes each item (spans it
    starts become children), and pass on what it returns."""
    current = trace.set_span_in_context(span_)
    try:
        while True:
            token = otel_context.attach(current)
            try:
                item = next(steps)
            except StopIteration as stop:
                return stop.value
            finally:
                otel_context.detach(token)
            yield item
    finally:
        steps.close()


def fail(span_: Span, error_type: str, description: str | None = None) -> None:
    span_.set_attribute("error.type", error_type)
    span_.set_status(Status(StatusCode.ERROR, description or error_type))


def set_attributes(span_: Span, attributes: Mapping[str, Any]) -> None:
    span_.set_attributes({k: v for k, v in attributes.items() if v is not None})


# ---- attribute sets ----------------------------------------------------------------------

def model_name(model: Any, backend: Any = None) -> str:
    """What the conventions call the request model: the served name, the checkpoint folder's
    name, or "nano" for the embedded model."""
    served = getattr(backend, "model", None)
    if isinstance(served, str):
        return served
    if model is None:
        return "nano"
    if isinstance(model, (str, Path)):
        return Path(model).name or str(model)
    return type(model).__name__


def provider_name(backend: Any) -> str:
    """gen_ai.provider.name: which backend answered (local runtime, remote engine, replay)."""
    kind = type(backend).__module__.rsplit(".", 1)[-1]
    return f"{AGENT_NAME}.{kind}"


def run_attributes(model: str, provider: str | None) -> dict:
    return {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT_NAME,
            "gen_ai.request.model": model, "gen_ai.provider.name": provider}


def usage_attributes(usage: Mapping[str, int]) -> dict:
    """Token counts from a backend's usage dict (prompt / reused / generated tokens)."""
    return {"gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
            "gen_ai.usage.output_tokens": usage.get("generated_tokens"),
            "gen_ai.usage.cache_read.input_tokens": usage.get("reused_tokens")}


def chat_attributes(model: str, provider: str, *, max_tokens: int, temperature: float,
                    top_p: float, seed: int | None) -> dict:
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            "gen_ai.provider.name": provider, "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.request.temperature": temperature, "gen_ai.request.top_p": top_p,
            "gen_ai.request.seed": seed}


def finish_attributes(usage: Mapping[str, int], stop_token: int | None) -> dict:
    """After a model call: its token counts, and why it ended (the token that stopped it)."""
    from agent.harmony.tokenizer import CALL, RETURN
    reason = {RETURN: "stop", CALL: "tool_calls"}.get(stop_token, "length")
    return {**usage_attributes(usage), "gen_ai.response.finish_reasons": (reason,)}


def tool_attributes(recipient: str) -> dict:
    """Functions are the user's code ("function"); python and browser are built in."""
    kind = "function" if recipient.startswith("functions.") else "extension"
    return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": recipient,
            "gen_ai.tool.type": kind}


# ---- `--trace FILE` ----------------------------------------------------------------------

def json_lines_provider(path: str | Path):
    """A TracerProvider that appends each finished span to `path` as one JSON line (the SDK's
    own JSON form of a span). `.shutdown()` flushes and closes the file."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class JsonLines(SpanExporter):
        def __init__(self):
            self.file = open(path, "a", encoding="utf-8")

        def export(self, spans) -> SpanExportResult:
            for finished in spans:
                self.file.write(json.dumps(json.loads(finished.to_json()), ensure_ascii=False) + "\n")
            self.file.flush()
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            self.file.close()

    provider = TracerProvider(resource=Resource.create({"service.name": AGENT_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLines()))
    return provider
