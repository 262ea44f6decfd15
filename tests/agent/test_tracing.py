"""Traces of agent runs, and the approval hook.

The spans are collected with the OpenTelemetry SDK's in-memory exporter; attribute names and
values are checked against the semantic-conventions package's constants, token counts against
openai-harmony's tokenizer and the prompts the recorded-completions backend received.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.loop import Agent
from agent.tools.function import tool

from .conftest import FINAL, THINK, call

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as G  # noqa: E402
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE  # noqa: E402

from agent import tracing  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CALL_ADD = THINK.format("Add them.") + call("functions.add", '{"a": 2, "b": 3}')
ANSWER = FINAL.format("2 + 3 = 5")
ADDED = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    ADDED.append((a, b))
    return a + b


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ADDED.clear()
    yield tracing.get_tracer(provider), exporter
    provider.shutdown()


def by_name(finished) -> dict:
    return {span.name: span for span in finished}


def test_one_run_is_one_trace_with_gen_ai_spans(spans, harmony_encoding):
    tracer, exporter = spans
    backend = ScriptedBackend([CALL_ADD, ANSWER])
    with Agent(backend, tools=[add], effort="low", date=None, tracer=tracer) as agent:
        result = agent.run("What is 2 + 3?")
    assert result.final == "2 + 3 = 5" and ADDED == [(2, 3)]

    finished = exporter.get_finished_spans()
    assert sorted(s.name for s in finished) == sorted(
        ["invoke_agent gpt-oss-agent", "attempt low", "chat ScriptedBackend", "chat ScriptedBackend",
         "execute_tool functions.add"])
    assert len({s.context.trace_id for s in finished}) == 1
    named = by_name(finished)
    run, attempt, tool_span = named["invoke_agent gpt-oss-agent"], named["attempt low"], named["execute_tool functions.add"]
    chats = sorted((s for s in finished if s.name.startswith("chat ")), key=lambda s: s.start_time)
    assert run.parent is None
    assert attempt.parent.span_id == run.context.span_id
    assert all(s.parent.span_id == attempt.context.span_id for s in chats + [tool_span])
    assert chats[0].end_time <= tool_span.start_time <= tool_span.end_time <= chats[1].start_time

    assert run.attributes[G.GEN_AI_OPERATION_NAME] == G.GenAiOperationNameValues.INVOKE_AGENT.value
    assert run.attributes[G.GEN_AI_AGENT_NAME] == "gpt-oss-agent"
    assert tool_span.attributes[G.GEN_AI_OPERATION_NAME] == G.GenAiOperationNameValues.EXECUTE_TOOL.value
    assert tool_span.attributes[G.GEN_AI_TOOL_NAME] == "functions.add"
    assert tool_span.attributes[G.GEN_AI_TOOL_TYPE] == "function"
    assert ERROR_TYPE not in tool_span.attributes

    # Token counts: the prompts the backend really received, the completions as openai-harmony
    # tokenizes them, and the reuse a prefix cache gets between the two calls.
    for span, prompt, completion, finish in zip(chats, backend.prompts, [CALL_ADD, ANSWER],
                                                ["tool_calls", "stop"]):
        assert span.attributes[G.GEN_AI_OPERATION_NAME] == G.GenAiOperationNameValues.CHAT.value
        assert span.attributes[G.GEN_AI_REQUEST_MODEL] == "ScriptedBackend"
        assert span.attributes[G.GEN_AI_USAGE_INPUT_TOKENS] == len(prompt)
        expected = len(harmony_encoding.encode(completion, allowed_special="all"))
        assert span.attributes[G.GEN_AI_USAGE_OUTPUT_TOKENS] == expected
        assert span.attributes[G.GEN_AI_RESPONSE_FINISH_REASONS] == (finish,)
        assert span.attributes[G.GEN_AI_REQUEST_TEMPERATURE] == 1.0
    assert chats[0].attributes[G.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 0
    assert chats[1].attributes[G.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] > len(backend.prompts[0]) // 2
    assert run.attributes[G.GEN_AI_USAGE_INPUT_TOKENS] == sum(map(len, backend.prompts))
    assert run.attributes[G.GEN_AI_USAGE_OUTPUT_TOKENS] == result.usage.generated_tokens
    assert attempt.attributes["gpt_oss_agent.effort"] == "low"


def test_each_escalation_attempt_is_its_own_span(spans):
    tracer, exporter = spans
    completions = [FINAL.format(word) for word in ("maybe", "probably", "surely")]
    backend = ScriptedBackend(completions, logprob=-3.0)     # low confidence: escalate twice
    with Agent(backend, effort="auto", date=None, tracer=tracer) as agent:
        result = agent.run("hello")
    assert result.attempts == 3 and result.final == "surely"
    finished = exporter.get_finished_spans()
    attempts = sorted((s for s in finished if s.name.startswith("attempt ")), key=lambda s: s.start_time)
    assert [s.attributes["gpt_oss_agent.attempt"] for s in attempts] == [1, 2, 3]
    assert [s.attributes["gpt_oss_agent.effort"] for s in attempts] == ["low", "medium", "high"]
    run = by_name(finished)["invoke_agent gpt-oss-agent"]
    assert {s.parent.span_id for s in attempts} == {run.context.span_id}


def test_without_a_configured_provider_nothing_is_recorded():
    from opentelemetry import trace
    assert not trace.get_tracer("probe").start_span("x").is_recording()    # the API's no-op
    with Agent(ScriptedBackend([ANSWER]), effort="low", date=None) as agent:
        assert agent.run("hi").final == "2 + 3 = 5"


def test_a_declined_call_is_not_run_and_the_model_is_told(spans):
    tracer, exporter = spans
    asked = []

    def approve(recipient: str, arguments: str):
        asked.append((recipient, json.loads(arguments)))
        return "the user does not want sums today"

    backend = ScriptedBackend([CALL_ADD, FINAL.format("I was not allowed to add.")])
    with Agent(backend, tools=[add], effort="low", date=None, approve=approve, tracer=tracer) as agent:
        result = agent.run("What is 2 + 3?")
    assert asked == [("functions.add", {"a": 2, "b": 3})]
    assert ADDED == []                                   # the function never ran
    (declined,) = result.tool_calls
    assert declined.error and "declined" in declined.output
    assert "the user does not want sums today" in declined.output
    # The model's next prompt carries the refusal as the tool's answer (openai-harmony's view).
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert tool_messages and "declined" in tool_messages[0]["content"][0]["text"]
    from agent.harmony.tokenizer import decode
    assert "the user does not want sums today" in decode(backend.prompts[1])
    assert result.final == "I was not allowed to add." and result.attempts == 1   # no escalation
    tool_span = by_name(exporter.get_finished_spans())["execute_tool functions.add"]
    assert tool_span.attributes[ERROR_TYPE] == "declined"


def test_approval_true_runs_the_call():
    backend = ScriptedBackend([CALL_ADD, ANSWER])
    ADDED.clear()
    with Agent(backend, tools=[add], effort="low", date=None, approve=lambda r, a: True) as agent:
        result = agent.run("What is 2 + 3?")
    assert ADDED == [(2, 3)] and result.tool_calls[0].output.strip() == "5"


def test_trace_flag_writes_json_lines(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"completions": [call("python", "print(6 * 7)", channel="analysis", json=False),
                                                  FINAL.format("42")]}))
    trace_file = tmp_path / "trace.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPT_OSS_AGENT_PYTHON_SANDBOX": os.environ.get("GPT_OSS_AGENT_PYTHON_SANDBOX", "none")}
    out = subprocess.run([sys.executable, "-m", "agent", "--model", str(script), "--effort", "low",
                          "--trace", str(trace_file), "--json", "What is 6*7?"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    usage = json.loads(out.stdout)["usage"]
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    names = [span["name"] for span in lines]
    assert names[-1] == "invoke_agent gpt-oss-agent" and names.count("chat script.json") == 2
    assert "execute_tool python" in names
    run = lines[-1]
    assert run["attributes"]["gen_ai.usage.output_tokens"] == usage["generated_tokens"]
    assert run["attributes"]["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert run["resource"]["attributes"]["service.name"] == "gpt-oss-agent"
    tool_span = lines[names.index("execute_tool python")]
    assert tool_span["attributes"]["gen_ai.tool.type"] == "extension"
    assert tool_span["parent_id"] is not None


def test_the_library_logs_under_agent(caplog):
    import logging
    caplog.set_level(logging.INFO, logger="agent")
    backend = ScriptedBackend([CALL_ADD, FINAL.format("no")] + [FINAL.format(w) for w in ("a", "b")],
                              logprob=-3.0)
    with Agent(backend, tools=[add], effort="auto", date=None, approve=lambda r, a: False) as agent:
        agent.run("What is 2 + 3?")
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("agent.loop", "functions.add declined: no reason given") in messages
    assert any(name == "agent.loop" and "escalating to medium" in text for name, text in messages)


def test_a_run_nests_under_the_callers_span_and_does_not_leak_into_its_code(spans):
    tracer, exporter = spans
    with Agent(ScriptedBackend([CALL_ADD, ANSWER]), tools=[add], effort="low", date=None,
               tracer=tracer) as agent:
        with tracer.start_as_current_span("application") as app:
            for _ in agent.stream("What is 2 + 3?"):
                with tracer.start_as_current_span("handler"):    # the caller's code per event
                    pass
    named = {}
    for span in exporter.get_finished_spans():
        named.setdefault(span.name, []).append(span)
    assert named["invoke_agent gpt-oss-agent"][0].parent.span_id == app.get_span_context().span_id
    assert {h.parent.span_id for h in named["handler"]} == {app.get_span_context().span_id}
