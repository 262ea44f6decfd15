"""`python -m agent harmony render|parse`, run as real subprocesses, against openai-harmony."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import openai_harmony as oh

import harmony_cases as hc
from agent.harmony import tokenizer as tk


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "agent", "harmony", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))


def test_render_file_matches_openai_harmony(harmony_encoding, tmp_path):
    conversation = hc.multi_turn_cases()[-1][1]
    path = tmp_path / "conversation.json"
    path.write_text(conversation.to_json())
    proc = run("render", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == harmony_encoding.render_conversation_for_completion(
        conversation, oh.Role.ASSISTANT)


def test_parse_stdin_matches_openai_harmony(harmony_encoding):
    tokens = [tk.CHANNEL] + tk.encode_text("analysis") + [tk.MESSAGE] + tk.encode_text("hm 🦜") + \
        [tk.END, tk.START] + tk.encode_text("assistant") + [tk.CHANNEL] + \
        tk.encode_text("commentary to=functions.f") + [tk.CONSTRAIN] + tk.encode_text("json") + \
        [tk.MESSAGE] + tk.encode_text('{"a": 1}') + [tk.CALL]
    proc = run("parse", "-", stdin=json.dumps(tokens))
    assert proc.returncode == 0 and proc.stderr == ""
    expected = [m.to_dict() for m in harmony_encoding.parse_messages_from_completion_tokens(
        tokens, oh.Role.ASSISTANT)]
    assert json.loads(proc.stdout) == json.loads(json.dumps(expected))


def test_parse_reports_problems_on_stderr_and_still_prints_messages():
    tokens = tk.encode_text("final") + [tk.MESSAGE] + tk.encode_text("hi") + [tk.RETURN, 13]
    proc = run("parse", "-", stdin=json.dumps(tokens))
    assert proc.returncode == 0
    assert json.loads(proc.stdout)[0]["channel"] == "final"
    assert "parse error: channel 'final' written without <|channel|>" in proc.stderr


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (("render", str(bad)), ("parse", str(bad)), ("render", str(tmp_path / "x"))):
        proc = run(*args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and str(tmp_path) in proc.stderr
    proc = run("parse", "-", stdin='["a"]')
    assert proc.returncode == 2 and "integer token ids" in proc.stderr
    proc = run("render", "-", stdin='{"messages": [{"role": "robot", "content": "x"}]}')
    assert proc.returncode == 2
    assert proc.stderr.startswith("harmony render: -: messages.0.author.role: Input should be")
