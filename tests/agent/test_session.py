"""Sessions (multi-turn, transcripts), structured output and effort escalation."""
from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from agent.events import EffortChosen, ErrorEvent
from agent.harmony.tokenizer import get_encoding
from agent.session import TranscriptError

from .conftest import FINAL, THINK, call


def test_second_turn_drops_the_first_turns_analysis_like_openai_harmony(make_agent, oracle_prompt):
    agent, backend = make_agent([
        THINK.format("SECRET-REASONING-1") + FINAL.format("Paris."),
        THINK.format("second thoughts") + FINAL.format("About 2.1 million."),
    ])
    session = agent.session()
    first = session.run("What is the capital of France?")
    second = session.run("And its population?")
    assert (first.final, second.final) == ("Paris.", "About 2.1 million.")
    # History: user, analysis, final for each turn.
    assert [(m.author.role.value, m.channel) for m in session.messages] == [
        ("user", None), ("assistant", "analysis"), ("assistant", "final")] * 2
    prompt = backend.prompts[1]
    assert "SECRET-REASONING-1" not in get_encoding().decode(prompt)
    # Exactly what openai-harmony renders for the full conversation (it drops the analysis).
    full = second.messages[:-2]          # everything before this turn's analysis + final
    assert any(m.get("channel") == "analysis" and "SECRET" in m["content"][0]["text"] for m in full)
    assert prompt == oracle_prompt(full)


def test_save_load_and_resume(make_agent, tmp_path):
    script = [FINAL.format("Noted: 7."), FINAL.format("You said 7.")]
    agent, backend = make_agent(list(script))
    session = agent.session()
    session.run("Remember the number 7.")
    path = session.save(tmp_path / "chat.json")
    saved = json.loads(path.read_text())
    assert saved["format"] == "gpt-oss-agent/session-v1"
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]

    resumed_agent, resumed_backend = make_agent(list(script[1:]))
    resumed = resumed_agent.session().load(path)
    result = resumed.run("What number did I say?")
    session.run("What number did I say?")
    assert result.final == "You said 7."
    # The resumed session sends exactly the prompt the original session sends.
    assert resumed_backend.prompts[0] == backend.prompts[1]


def test_bad_transcripts_are_clear_errors(make_agent, tmp_path):
    agent, _ = make_agent([])
    with pytest.raises(TranscriptError, match="no such transcript"):
        agent.session().load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [{"role": "wizard", "content": "x"}]}')
    with pytest.raises(TranscriptError, match="message 0"):
        agent.session().load(bad)


class Person(BaseModel):
    """A person mentioned in the text."""
    name: str
    age: int


def test_structured_output_validates_and_asks_for_fixes(make_agent):
    agent, backend = make_agent([
        FINAL.format('{"name": "Ada", "age": "thirty-six"}'),
        FINAL.format('```json\n{"name": "Ada", "age": 36}\n```'),
    ])
    events = list(agent.stream("Ada is 36. Extract the person.", output=Person))
    result = events[-1].result
    assert result.output == Person(name="Ada", age=36) and result.ok
    assert (result.name, result.age) == ("Ada", 36)       # the result reads through to it
    assert result.to_json_dict()["output"] == {"name": "Ada", "age": 36}
    assert any(isinstance(e, ErrorEvent) and "age" in e.message for e in events)
    first_prompt = get_encoding().decode(backend.prompts[0])
    assert "# Response Formats" in first_prompt and "## Person" in first_prompt
    second_prompt = get_encoding().decode(backend.prompts[1])
    assert "not a valid `Person` object" in second_prompt


def test_structured_output_gives_up_after_bounded_retries(make_agent):
    agent, backend = make_agent([FINAL.format("not json")] * 3, output_retries=1)
    result = agent.run("Extract", output=Person)
    assert result.stop_reason == "invalid_output" and result.output is None
    assert len(backend.prompts) == 2 and "Person" in result.reason


def _answer_by_effort(prompt: list[int]) -> str:
    """A model that is wrong at low effort and right from medium on."""
    text = get_encoding().decode(prompt)
    answer = "41" if "Reasoning: low" in text else "42"
    return FINAL.format(answer)


def test_escalation_when_the_check_fails_at_low(make_agent):
    agent, backend = make_agent([_answer_by_effort] * 3, effort="auto")
    task = "Quick question: what is 6 times 7?"
    events = list(agent.stream(task, check=lambda r: r.final.strip() == "42" or f"wrong answer {r.final}"))
    result = events[-1].result
    assert [e.effort for e in events if isinstance(e, EffortChosen)] == ["low", "medium"]
    assert result.final == "42" and result.effort == "medium" and result.attempts == 2
    assert [d.effort for d in result.decisions] == ["low", "medium"]
    assert "escalated from low" in result.effort_reason and "wrong answer 41" in result.effort_reason
    assert len(backend.prompts) == 2


def test_fixed_effort_never_escalates(make_agent):
    agent, backend = make_agent([_answer_by_effort] * 3, effort="low")
    events = list(agent.stream("What is 6 times 7?", check=lambda r: r.final == "42"))
    result = events[-1].result
    assert result.final == "41" and result.attempts == 1
    assert any("check failed" in e for e in result.errors)
    assert any(isinstance(e, ErrorEvent) and "check failed" in e.message for e in events)


def test_a_user_router_decides_and_escalates(make_agent):
    from agent.router import Decision, Router

    class AlwaysMedium(Router):
        def choose(self, task, *, tools=()):
            return Decision("medium", f"my policy ({len(tools)} tools)")

    agent, backend = make_agent([_answer_by_effort], effort=AlwaysMedium())
    result = agent.run("anything", check=lambda r: r.final == "42")
    assert result.final == "42" and result.effort == "medium"
    assert result.effort_reason == "my policy (0 tools)"
    assert "Reasoning: medium" in get_encoding().decode(backend.prompts[0])


def test_low_confidence_escalates_to_the_top_and_stops(make_agent):
    agent, backend = make_agent([FINAL.format("maybe")] * 4, effort="auto", logprob=-3.0)
    result = agent.run("hello")
    assert [d.effort for d in result.decisions] == ["low", "medium", "high"]
    assert result.confidence == pytest.approx(0.0498, abs=1e-3)
    assert any("low confidence" in e for e in result.errors)
    assert len(backend.prompts) == 3


def test_unresolved_tool_error_escalates(make_agent):
    agent, _ = make_agent([call("functions.missing", "{}"), FINAL.format("guess"),
                           call("functions.missing", "{}"), FINAL.format("guess again"),
                           FINAL.format("fine")], effort="auto")
    result = agent.run("hi there")
    assert [d.effort for d in result.decisions] == ["low", "medium", "high"]
    assert "unresolved error" in result.decisions[1].reason
    assert result.final == "fine"


def test_a_recovered_parse_error_does_not_escalate(make_agent):
    agent, backend = make_agent(["<|end|>", FINAL.format("ok")], effort="auto")
    result = agent.run("hi there")
    assert result.final == "ok" and result.attempts == 1 and result.ok
    assert len(backend.prompts) == 2


def test_limits_do_not_escalate_but_invalid_output_does(make_agent):
    agent, backend = make_agent([call("functions.x", "{}")] * 3, effort="auto", max_steps=1)
    result = agent.run("hi there")
    assert result.stop_reason == "max_steps" and result.attempts == 1 and len(backend.prompts) == 1

    agent, backend = make_agent([FINAL.format("nope"), FINAL.format('{"name": "A", "age": 1}')],
                                effort="auto", output_retries=0)
    result = agent.run("hi there", output=Person)
    assert [d.effort for d in result.decisions] == ["low", "medium"]
    assert result.output == Person(name="A", age=1)
