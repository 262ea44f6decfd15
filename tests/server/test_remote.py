"""The remote backend against this project's own server, speaking what the engines speak:
raw token completions (vLLM/SGLang convention) and chat completions; retries and resume."""
from __future__ import annotations

import threading
import time

import pytest

from agent.backends.harmony_chat import chat_messages_from_prompt, harmony_tokens_from_chat
from agent.backends.remote import RemoteBackend, RemoteError, split_url
from agent.backends.scripted import ScriptedBackend
from agent.harmony.tokenizer import CALL, RETURN, get_encoding
from agent.server.app import create_app

CALL_ADD = ('<|channel|>analysis<|message|>Use the adder.<|end|><|start|>assistant<|channel|>commentary '
            'to=functions.add <|constrain|>json<|message|>{"a": 2, "b": 3}<|call|>')
ANSWER = "<|channel|>final<|message|>2 + 3 = 5<|return|>"


def tokens(text: str) -> list[int]:
    return list(get_encoding().encode(text, allowed_special="all"))


def test_raw_tokens_round_trip_exactly(serve):
    server_side = ScriptedBackend([CALL_ADD, ANSWER], logprob=-0.25)
    prompt = tokens("<|start|>user<|message|>add 2 and 3<|end|><|start|>assistant")
    with serve(server_side) as (url, _):
        remote = RemoteBackend(url + "/v1")
        first = list(remote.complete(prompt, max_tokens=100, stop=[RETURN, CALL], logprobs=True))
        usage = dict(remote.last_usage)
        second = list(remote.complete(prompt, max_tokens=100, stop=[RETURN, CALL]))
    assert [g.token for g in first] == tokens(CALL_ADD)  # the stop token comes back too
    assert first[-1].token == CALL and first[0].logprob == -0.25
    assert [g.token for g in second] == tokens(ANSWER)
    assert server_side.prompts == [prompt, prompt]
    assert usage["prompt_tokens"] == len(prompt) and usage["generated_tokens"] == len(first)
    assert remote.model == "test-model"  # discovered from /v1/models


def add_tool():
    from agent.tools.function import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b
    return add


@pytest.mark.parametrize("scheme", ["", "chat+"])
def test_agent_loop_completes_a_tool_task_through_the_server(serve, scheme):
    from agent.loop import Agent
    server_side = ScriptedBackend([CALL_ADD, ANSWER])
    with serve(server_side) as (url, _):
        agent = Agent(model=RemoteBackend(scheme + url), tools=[add_tool()], effort="low",
                      min_confidence=None, date=None)
        result = agent.run("What is 2 + 3? Use the tool.")
        agent.close()
    assert result.final == "2 + 3 = 5"
    (call,) = result.tool_calls
    assert call.recipient == "functions.add" and call.output.strip() == "5"
    # the tool really ran in the agent: its answer went over the wire in the second prompt
    second = get_encoding().decode(server_side.prompts[1])
    assert "<|start|>functions.add to=assistant<|channel|>commentary<|message|>5<|end|>" in second
    assert "Reasoning: low" in second


def test_chat_fallback_conversion_both_ways():
    prompt = tokens(
        "<|start|>system<|message|>You are ChatGPT.\nReasoning: high\n<|end|>"
        "<|start|>developer<|message|># Instructions\n\nBe kind.<|end|>"
        "<|start|>user<|message|>sum?<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>adding<|end|>"
        '<|start|>assistant to=functions.add<|channel|>commentary <|constrain|>json<|message|>{"a":1}<|call|>'
        "<|start|>functions.add to=assistant<|channel|>commentary<|message|>1<|end|><|start|>assistant")
    effort, messages = chat_messages_from_prompt(prompt)
    assert effort == "high"
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["reasoning_content"] == "adding"
    assert messages[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a":1}'}
    assert messages[3]["tool_call_id"] == messages[2]["tool_calls"][0]["id"]
    back = harmony_tokens_from_chat({"content": "Done.", "reasoning_content": "ok"}, "stop")
    assert back == tokens("<|channel|>analysis<|message|>ok<|end|><|start|>assistant"
                          "<|channel|>final<|message|>Done.<|return|>")


def test_unreachable_engine_is_retried_then_reported(port):
    remote = RemoteBackend(f"http://127.0.0.1:{port}", model="m", retries=2, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(RemoteError, match="gave up after 2 retries"):
        list(remote.complete([1, 2], max_tokens=5, stop=[RETURN]))
    assert time.monotonic() - started < 5


def test_engine_that_starts_late_is_reached_by_retrying(run_app, port):
    app = create_app(ScriptedBackend([ANSWER]), "test-model", max_context=4096)
    remote = RemoteBackend(f"http://127.0.0.1:{port}", model="test-model", retries=6, backoff=0.1)
    got: list = []
    worker = threading.Thread(target=lambda: got.extend(
        remote.complete([1, 2], max_tokens=50, stop=[RETURN])))
    worker.start()
    time.sleep(0.3)  # the first attempts find nothing listening
    with run_app(app, port):
        worker.join(timeout=15)
    assert [g.token for g in got] == tokens(ANSWER)


def drop_first_stream(app, after_chunks: int):
    """ASGI wrapper: the first /v1/completions stream breaks after a few chunks, as when an
    engine or a proxy drops the connection mid-answer."""
    state = {"dropped": False}

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or state["dropped"] or scope["path"] != "/v1/completions":
            return await app(scope, receive, send)
        state["dropped"] = True
        sent = 0

        async def breaking_send(message):
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += 1
                if sent > after_chunks:
                    raise ConnectionResetError("test server dropped the connection")
            await send(message)
        await app(scope, receive, breaking_send)
    return wrapped


def test_broken_stream_resumes_from_the_tokens_received(run_app):
    full = tokens(CALL_ADD)
    prompt = tokens("<|start|>user<|message|>add<|end|><|start|>assistant")
    server_side = ScriptedBackend([CALL_ADD, lambda p: full[len(p) - len(prompt):]])
    app = drop_first_stream(create_app(server_side, "test-model", max_context=4096), 4)
    with run_app(app) as url:
        remote = RemoteBackend(url, retries=2, backoff=0.01)
        got = [g.token for g in remote.complete(prompt, max_tokens=200, stop=[RETURN, CALL])]
    assert got == full  # nothing lost, nothing twice
    assert len(server_side.prompts) == 2
    resumed = server_side.prompts[1]
    assert resumed[:len(prompt)] == prompt and len(resumed) > len(prompt)
    assert resumed == prompt + full[:len(resumed) - len(prompt)]


def test_engine_errors_are_one_clear_line(serve):
    with serve(ScriptedBackend([])) as (url, _):
        remote = RemoteBackend(url, model="other-model", retries=0)
        with pytest.raises(RemoteError, match="other-model"):
            list(remote.complete([1], max_tokens=5, stop=[]))


def test_url_schemes():
    assert split_url("http://h:8000/v1/") == ("completions", "http://h:8000")
    assert split_url("llamacpp+http://h:8080") == ("llamacpp", "http://h:8080")
    assert split_url("ollama+http://h:11434") == ("ollama", "http://h:11434")
    assert split_url("chat+https://api.example.com/v1") == ("chat", "https://api.example.com")


def test_agent_cli_with_backend_flag(serve, tmp_path):
    import json
    import subprocess
    import sys
    (tmp_path / "mathtools.py").write_text(
        "def add(a: int, b: int) -> int:\n    '''Add two integers.'''\n    return a + b\n")
    server_side = ScriptedBackend([CALL_ADD, ANSWER])
    with serve(server_side) as (url, _):
        run = subprocess.run(
            [sys.executable, "-m", "agent", "--backend", url, "--json", "--effort", "low",
             "--tools", f"{tmp_path / 'mathtools.py'}:add", "What is 2 + 3?"],
            capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["final"] == "2 + 3 = 5"
    assert [c["recipient"] for c in result["tool_calls"]] == ["functions.add"]
    assert result["tool_calls"][0]["output"].strip() == "5"


def test_server_in_front_of_a_remote_engine(serve):
    """`serve --backend URL`: this server renders/parses Harmony, the engine only generates."""
    engine_side = ScriptedBackend([CALL_ADD])
    with serve(engine_side, name="engine-model") as (engine_url, _):
        with serve(RemoteBackend(engine_url), name="front") as (_, client):
            r = client.chat.completions.create(
                model="front", messages=[{"role": "user", "content": "2+3?"}],
                tools=[{"type": "function", "function": {
                    "name": "add", "description": "Add", "parameters": {"type": "object"}}}])
    (call,) = r.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("add", '{"a": 2, "b": 3}')
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.reasoning_content == "Use the adder."
    assert "namespace functions" in get_encoding().decode(engine_side.prompts[0])


def test_llamacpp_and_ollama_stream_readers():
    """No llama.cpp or Ollama here: their documented stream shapes, read by the backend."""
    import json
    llama = RemoteBackend("llamacpp+http://127.0.0.1:9", retries=0)
    llama.last_usage = {"prompt_tokens": 10, "reused_tokens": 0, "computed_tokens": 0,
                        "generated_tokens": 0}
    body = tokens("<|channel|>final<|message|>Hi")
    lines = [f"data: {json.dumps({'content': 'x', 'tokens': body[:2], 'stop': False})}",
             f"data: {json.dumps({'content': 'y', 'tokens': body[2:], 'stop': False})}",
             f"data: {json.dumps({'content': '', 'stop': True, 'stop_type': 'eos', 'timings': {'prompt_n': 3}})}"]
    read = list(llama._read_llamacpp(lines))
    assert [t for t, _, _ in read if t is not None] == body
    assert read[-1][2] == "stop" and llama.last_usage["reused_tokens"] == 7
    assert llama._llamacpp_body([1, 2], 5, [RETURN], dict(temperature=0.5, top_p=1.0, seed=3,
                                                          logprobs=False))["prompt"] == [1, 2]

    ollama = RemoteBackend("ollama+http://127.0.0.1:9", model="gpt-oss:20b", retries=0)
    lines = [json.dumps({"response": "<|channel|>final<|message|>", "done": False}),
             json.dumps({"response": "Hi", "done": False}),
             json.dumps({"response": "", "done": True, "done_reason": "length"})]
    read = list(ollama._read_ollama(lines))
    assert [t for t, _, _ in read if t is not None] == body
    assert read[-1][2] == "length"
    sent = ollama._ollama_body(tokens("<|start|>user<|message|>hi<|end|><|start|>assistant"), 9,
                               [RETURN, CALL], dict(temperature=1.0, top_p=1.0, seed=None,
                                                    logprobs=False))
    assert sent["raw"] is True and sent["prompt"].endswith("<|start|>assistant")
    assert sent["options"]["stop"] == ["<|return|>", "<|call|>"]


def test_missing_stop_token_is_inferred_from_the_header():
    from agent.backends.remote import implied_stop
    assert implied_stop(tokens("<|channel|>commentary to=functions.add <|constrain|>json<|message|>{}")) == CALL
    assert implied_stop(tokens("<|channel|>analysis<|message|>x<|end|><|start|>assistant"
                               "<|channel|>final<|message|>done")) == RETURN


# ---- the turn grammar over the wire --------------------------------------------------------

@pytest.fixture(scope="module")
def embedded_server():
    """This project's server on the embedded model: it follows `structured_outputs.grammar`
    as vLLM's guidance backend does."""
    from agent.backends.local import LocalBackend
    from .conftest import serving
    with serving(LocalBackend.load(None), "gpt-oss-nano") as (url, _):
        yield url


def travel_tools():
    from agent.tools.function import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"{city}: 18 C, light rain"

    @tool
    def convert_currency(amount: float, source: str, target: str) -> str:
        """Convert an amount between currencies."""
        return f"{amount * 0.9:.2f} {target}"
    return [get_weather, convert_currency]


TRAVEL_TASKS = ["What's the weather in Paris?", "convert 250 dollars to euros", "Hi there!",
                "what is 12 * 9", "tell me about tokyo weather", "is it raining in Oslo?"]


@pytest.mark.parametrize("sends_grammar", [True, False])
def test_remote_turns_follow_the_grammar_the_agent_sends(embedded_server, sends_grammar):
    """With the grammar sent, the embedded model (which left to itself calls tools it was
    never offered) calls only declared tools with valid arguments. Without it, the agent
    still checks every returned token against the same grammar and reports where the
    engine's output left it."""
    from agent.loop import Agent
    remote = RemoteBackend(embedded_server)
    remote.sends_grammar = sends_grammar
    agent = Agent(model=remote, tools=travel_tools(), effort="low", min_confidence=None,
                  date=None, max_tokens=400, seed=7)
    results = [agent.run(task) for task in TRAVEL_TASKS]
    agent.close()
    declared = {"functions.get_weather", "functions.convert_currency"}
    called = [call.recipient for result in results for call in result.tool_calls]
    left = [e for result in results for e in result.errors if "left the grammar" in e]
    if sends_grammar:
        assert remote.sends_grammar                       # the server took every grammar
        assert set(called) <= declared and called, called
        assert left == [], left
    else:
        # every step that called an undeclared tool was caught (one completion may hold two
        # calls: its check stops at the first token that leaves the grammar)
        undeclared = {(n, c.step) for n, result in enumerate(results)
                      for c in result.tool_calls if c.recipient not in declared}
        caught = {(n, int(e.split(":")[0].removeprefix("step "))) for n, result in
                  enumerate(results) for e in result.errors if "left the grammar" in e}
        assert left, "the check found nothing; the control shows why the grammar is sent"
        assert undeclared <= caught, (undeclared, caught)


def test_completions_follow_a_grammar_and_refuse_a_bad_one(embedded_server):
    import httpx
    prompt = tokens("<|start|>user<|message|>Is the sky blue?<|end|><|start|>assistant")
    grammar = 'start: <|channel|> "final" <|message|> ("yes" | "no, never") <|return|>'
    for seed in range(4):
        body = httpx.post(embedded_server + "/v1/completions", timeout=60, json={
            "model": "gpt-oss-nano", "prompt": prompt, "max_tokens": 20, "temperature": 1.0,
            "seed": seed, "skip_special_tokens": False,
            "structured_outputs": {"grammar": grammar}}).json()
        assert body["choices"][0]["text"] in ("<|channel|>final<|message|>yes",
                                               "<|channel|>final<|message|>no, never"), body
    bad = httpx.post(embedded_server + "/v1/completions", timeout=60, json={
        "model": "gpt-oss-nano", "prompt": prompt, "structured_outputs": {"grammar": "start: nowhere"}})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["param"] == "structured_outputs.grammar" and "nowhere" in error["message"]
    other = httpx.post(embedded_server + "/v1/completions", timeout=60, json={
        "model": "gpt-oss-nano", "prompt": prompt, "structured_outputs": {"regex": "a+"}})
    assert other.status_code == 400 and "regex" in other.text


def test_an_engine_that_cannot_follow_the_grammar_is_checked_instead(serve):
    """A server over a backend without constraints answers the grammar with a 400; the
    remote backend then stops sending it and the task still completes."""
    from agent.loop import Agent
    with serve(ScriptedBackend([CALL_ADD, ANSWER])) as (url, _):
        remote = RemoteBackend(url)
        agent = Agent(model=remote, tools=[add_tool()], effort="low", min_confidence=None,
                      date=None)
        result = agent.run("What is 2 + 3? Use the tool.")
        agent.close()
    assert result.final == "2 + 3 = 5" and not remote.sends_grammar
    assert not [e for e in result.errors if "left the grammar" in e]
