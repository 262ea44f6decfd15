"""`python -m agent` in a subprocess: recorded completions for exact behaviour, a random
tiny checkpoint (full Harmony vocabulary) for the real in-process runtime end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FINAL, THINK, call

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}


def agent_cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout, cwd=ROOT, env=ENV)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random 2-layer gpt-oss with the real 201088-token vocabulary."""
    from agent.model.config import preset
    from agent.model.random import write_random
    folder = tmp_path_factory.mktemp("tiny")
    write_random(folder, preset("tiny", vocab_size=201088, eos_token_id=200002, pad_token_id=199999))
    return folder


def script(tmp_path: Path, *completions: str, logprob: float | None = None) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"completions": list(completions), "logprob": logprob}))
    return str(path)


def test_json_output_keys_with_a_tool_call(tmp_path):
    model = script(tmp_path, call("python", "print(6 * 7)", channel="analysis", json=False),
                   FINAL.format("42"))
    out = agent_cli("--model", model, "--effort", "medium", "--json", "What is 6*7?")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"final", "effort", "tool_calls", "messages", "usage"} <= set(data)
    assert data["final"] == "42" and data["effort"] == "medium"
    # python is the command line's default tool: the call really ran.
    (tool_call,) = data["tool_calls"]
    assert tool_call["recipient"] == "python" and tool_call["input"] == "print(6 * 7)"
    assert tool_call["output"].strip() == "42"
    assert set(data["usage"]) >= {"prompt_tokens", "reused_tokens", "generated_tokens"}


def test_no_tools_answers_a_call_as_an_unknown_tool(tmp_path):
    model = script(tmp_path, call("python", "print(6 * 7)", channel="analysis", json=False),
                   FINAL.format("42"))
    out = agent_cli("--model", model, "--tools", "", "--effort", "low", "--json", "What is 6*7?")
    assert out.returncode == 0, out.stderr
    (tool_call,) = json.loads(out.stdout)["tool_calls"]
    assert "no tool named" in tool_call["output"]


def test_without_bubblewrap_the_cli_runs_python_unsandboxed_and_says_so(tmp_path):
    model = script(tmp_path, call("python", "print(6 * 7)", channel="analysis", json=False),
                   FINAL.format("42"))
    env = {**ENV, "PATH": str(tmp_path)}  # no bwrap on this PATH
    env.pop("GPT_OSS_AGENT_PYTHON_SANDBOX", None)
    out = subprocess.run([sys.executable, "-m", "agent", "--model", model, "--effort", "low",
                          "--json", "What is 6*7?"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert "bubblewrap (bwrap) not found" in out.stderr
    (tool_call,) = json.loads(out.stdout)["tool_calls"]
    assert tool_call["output"].strip() == "42"


def test_streaming_shows_tools_and_reasoning(tmp_path):
    tool_file = tmp_path / "mytools.py"
    tool_file.write_text("def shout(text: str) -> str:\n    '''Upper-case a text.'''\n    return text.upper()\n")
    model = script(tmp_path, THINK.format("I should shout.") + call("functions.shout", '{"text": "hey"}'),
                   FINAL.format("HEY it is."))
    out = agent_cli("--model", model, "--tools", f"{tool_file}:shout", "--show-reasoning", "--raw",
                    "--effort", "low", "shout hey")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("HEY it is.\n")
    assert "I should shout." in out.stderr
    assert "→ functions.shout" in out.stderr and "← functions.shout: HEY" in out.stderr
    # --raw: the whole conversation in Harmony text, the tool message included.
    assert "<|start|>functions.shout to=assistant<|channel|>commentary<|message|>HEY<|end|>" in out.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--effort", "extreme", "x"], 2, "invalid choice"),
    (["--tools", "calculator", "x"], 2, "unknown tool 'calculator'"),
    (["--tools", "nosuchmodule:f", "x"], 2, "cannot import nosuchmodule"),
    (["--max-steps", "0", "x"], 2, "must be at least 1"),
    (["--model", "/nonexistent/checkpoint", "x"], 3, "no such checkpoint folder"),
    (["--model", "gpt-oss-20b", "x"], 3, "python -m agent download gpt-oss-20b"),
    ([""], 2, "the task is empty"),
    (["  ", "\n"], 2, "the task is empty"),
])
def test_bad_flags_exit_non_zero_with_one_clear_line(args, code, message):
    out = agent_cli(*args)
    assert out.returncode == code
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_interactive_commands(tmp_path):
    model = script(tmp_path, FINAL.format("first answer"), FINAL.format("second answer"))
    saved = tmp_path / "t.json"
    commands = f"hello\n/effort high\n/save {saved}\n/reset\n/load {saved}\n/tools nope\nagain\n/quit\n"
    out = agent_cli("--model", model, "--effort", "low", stdin=commands)
    assert out.returncode == 0, out.stderr
    assert "first answer" in out.stdout and "second answer" in out.stdout
    assert "effort: high" in out.stdout and "[effort high" in out.stderr
    assert f"saved 2 messages to {saved}" in out.stdout and "loaded 2 messages" in out.stdout
    assert "unknown tool 'nope'" in out.stderr
    assert [m["role"] for m in json.loads(saved.read_text())["messages"]] == ["user", "assistant"]


def test_end_to_end_on_a_random_tiny_checkpoint(tiny_checkpoint):
    out = agent_cli("--model", str(tiny_checkpoint), "--json", "--effort", "low", "--max-steps", "1",
                    "--max-tokens", "8", "--seed", "0", "--temperature", "0", "Say hi", timeout=240)
    # Random weights never finish a Harmony message: the run stops at the token budget, says
    # so, and exits 4 (a limit ended it), with the real runtime's token accounting.
    assert out.returncode == 4, out.stderr
    data = json.loads(out.stdout)
    assert data["stop_reason"] in ("max_tokens", "max_steps") and data["reason"]
    assert data["usage"]["generated_tokens"] == 8
    assert data["usage"]["prompt_tokens"] > 20
    assert data["effort"] == "low" and data["messages"][0]["role"] == "system"


def _embedded_weights() -> bool:
    from agent.model import nano
    return any(nano.path().glob("*.safetensors"))


@pytest.mark.skipif(not _embedded_weights(), reason="the embedded model's weights are not built yet")
def test_end_to_end_on_the_embedded_model():
    out = agent_cli("--json", "--tools", "python", "--effort", "low", "--temperature", "0",
                    "--max-steps", "4", "--max-tokens", "400", "What is 37 * 41?", timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"final", "effort", "tool_calls", "messages", "usage"} <= set(data)
    assert data["effort"] == "low" and data["usage"]["generated_tokens"] > 0
    # The embedded model speaks Harmony: the parser recovers assistant messages from it.
    assert any(m["role"] == "assistant" for m in data["messages"])


@pytest.mark.skipif(not _embedded_weights(), reason="the embedded model's weights are not built yet")
def test_no_tools_means_no_tool_call_on_the_embedded_model():
    """It was trained to reach for python on arithmetic: with no tools declared the grammar
    leaves it no recipient, so it answers (right or wrong) and exits 0."""
    for task in ("What is 37 * 43?", "Run python to print 2 ** 10"):
        out = agent_cli("--json", "--tools", "", "--effort", "low", task, timeout=300)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["tool_calls"] == [] and data["stop_reason"] == "done"
        assert all(m.get("recipient") in (None, "assistant") for m in data["messages"])


def test_only_the_last_attempt_is_the_answer(tmp_path):
    model = script(tmp_path, *(FINAL.format(f"{n} try") for n in ("first", "second", "third")), logprob=-3.0)
    out = agent_cli("--model", model, "--effort", "auto", "hello")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "third try\n"          # escalation discarded the first two
    assert "[effort medium: escalated from low: low confidence 0.05 < 0.35]" in out.stderr
    assert "[discarded attempt 1: first try]" in out.stderr
    assert "[discarded attempt 2: second try]" in out.stderr


def test_reasoning_and_answer_never_share_a_line(tmp_path):
    model = script(tmp_path, THINK.format("I will say hi") + FINAL.format("Hi."))
    out = subprocess.run([sys.executable, "-m", "agent", "--model", model, "--tools", "",
                          "--show-reasoning", "hello"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120, cwd=ROOT, env=ENV)
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()     # stdout and stderr in one stream, as on a terminal
    assert "I will say hi" in lines and lines[-1] == "Hi."


def test_bare_backend_flag_uses_openai_base_url_and_key(tmp_path):
    """A real HTTP server on loopback records what the command line sends it."""
    import http.server
    import threading
    seen = []

    class Engine(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.path, self.headers.get("Authorization")))
            body = b'{"error": {"message": "bad key"}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**ENV, "OPENAI_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1",
               "OPENAI_API_KEY": "sk-test-123"}
        env.pop("GPT_OSS_AGENT_API_KEY", None)
        out = subprocess.run([sys.executable, "-m", "agent", "--backend", "--model", "gpt-oss-120b",
                              "--tools", "", "--json", "hi"], capture_output=True, text=True,
                             timeout=120, cwd=ROOT, env=env)
    finally:
        server.shutdown()
    assert seen and seen[0] == ("/v1/completions", "Bearer sk-test-123")
    assert "HTTP 401" in json.loads(out.stdout)["reason"]       # the engine's refusal, stated
    env.pop("OPENAI_BASE_URL")
    out = subprocess.run([sys.executable, "-m", "agent", "--backend", "--tools", "", "hi"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert out.returncode == 2 and "needs OPENAI_BASE_URL" in out.stderr


def test_verbose_shows_the_library_logs(tmp_path):
    model = script(tmp_path, call("functions.nope", "{}"), FINAL.format("ok"))
    quiet = agent_cli("--model", model, "--tools", "", "--effort", "low", "hi")
    loud = agent_cli("--model", model, "--tools", "", "--effort", "low", "-v", "hi")
    assert quiet.returncode == loud.returncode == 0, loud.stderr
    assert "INFO agent.loop: step 1: functions.nope" not in quiet.stderr
    assert "INFO agent.loop: step 1: functions.nope" in loud.stderr
