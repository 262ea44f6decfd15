"""The interactive chat driven in a pseudo-terminal (pexpect), as a person types into it:
recorded completions stand in for the model, the tools and the terminal are real.

What the chat holds is read back from the transcripts it saves (/save), not from its output.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from ..conftest import wait_until
from .conftest import FINAL, THINK, call
from .test_cli import tiny_checkpoint  # noqa: F401 (a fixture: a random checkpoint, real vocabulary)

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parents[2]
UP = "\x1b[A"
# HOME is the test's own (a fresh chat history) but the compiled kernels are the machine's
CACHE = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
WAIT_TOOL = '''
import asyncio

from pathlib import Path

async def wait(seconds: int) -> str:
    """Wait a number of seconds."""
    Path(__file__).with_name("wait-started").touch()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        Path(__file__).with_name("wait-cancelled").touch()
        raise
    return "done waiting"
'''


@pytest.fixture
def chat(tmp_path):
    """chat(*completions, flags...) -> a pexpect child running `python -m agent` at a prompt."""
    children = []
    tool_file = tmp_path / "waiting.py"
    tool_file.write_text(WAIT_TOOL)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": CACHE, "TERM": "xterm",
           "INPUTRC": "/dev/null", "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}

    def start(*completions: str, flags: tuple = (), logprob: float | None = None):
        script = tmp_path / f"script{len(children)}.json"
        script.write_text(json.dumps({"completions": list(completions), "logprob": logprob}))
        child = pexpect.spawn(sys.executable, ["-m", "agent", "--model", str(script), "--effort", "low",
                                               "--tools", f"{tool_file}:wait", *flags],
                              cwd=str(ROOT), env=env, encoding="utf-8", timeout=60,
                              dimensions=(40, 200))
        child.logfile_read = io.StringIO()        # the whole screen, for a failure's message
        children.append(child)
        child.expect_exact("> ")
        return child

    yield start
    for child in children:
        child.close(force=True)


def expect_exit(child) -> None:
    try:
        child.expect(pexpect.EOF)
    except pexpect.TIMEOUT:
        raise AssertionError("the chat did not end; its screen:\n"
                             + child.logfile_read.getvalue()[-3000:]) from None
    child.close()


def saved_user_messages(child, path: Path) -> list[str]:
    child.sendline(f"/save {path}")
    child.expect_exact(f"to {path}")
    child.expect_exact("> ")
    messages = json.loads(path.read_text())["messages"]
    return [m["content"][0]["text"] for m in messages if m["role"] == "user"]


def test_ctrl_c_cancels_the_running_turn_and_keeps_the_chat(chat, tmp_path):
    child = chat(FINAL.format("first answer"), call("functions.wait", '{"seconds": 60}'),
                 FINAL.format("third answer"))
    child.sendline("hello")
    child.expect_exact("first answer")
    child.expect_exact("> ")
    child.sendline("wait a minute")
    child.expect_exact("→ functions.wait")
    assert wait_until(lambda: (tmp_path / "wait-started").exists(), 10)  # the turn is in the tool
    child.sendintr()
    child.expect_exact("[cancelled; the conversation keeps its 2 earlier messages]")
    child.expect_exact("> ")
    assert wait_until(lambda: (tmp_path / "wait-cancelled").exists(), 10)  # the tool stopped too
    child.sendline("again")                       # the chat goes on after the cancelled turn
    child.expect_exact("third answer")
    child.expect_exact("> ")
    assert saved_user_messages(child, tmp_path / "t.json") == ["hello", "again"]
    child.send("half a line")
    child.expect_exact("half a line")
    child.sendintr()                              # Ctrl-C at the prompt only clears the line
    child.expect_exact("> ")
    child.sendline("/quit")
    expect_exit(child)
    assert child.exitstatus == 0


def test_history_recall_within_and_across_chats(chat, tmp_path):
    child = chat(FINAL.format("four"), FINAL.format("four again"))
    child.sendline("what is two plus two")
    child.expect_exact("four")
    child.expect_exact("> ")
    child.send(UP + "\r")                         # the arrow recalls the last line
    child.expect_exact("four again")
    child.expect_exact("> ")
    assert saved_user_messages(child, tmp_path / "a.json") == ["what is two plus two"] * 2
    child.sendeof()                               # Ctrl-D leaves and saves the history
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (tmp_path / ".cache" / "gpt-oss-agent" / "chat_history").read_text()
    assert "what is two plus two" in history

    later = chat(FINAL.format("four, still"))     # a new chat reads that history
    later.send(UP + UP + "\r")                    # skip the /save line, recall the question
    later.expect_exact("four, still")
    later.expect_exact("> ")
    assert saved_user_messages(later, tmp_path / "b.json") == ["what is two plus two"]


def test_multi_line_messages_and_the_tools_command(chat, tmp_path):
    child = chat(FINAL.format("got the block"), FINAL.format("got the continued line"))
    child.sendline('"""')
    child.expect_exact("... ")
    child.sendline("line one")
    child.sendline('line two"""')
    child.expect_exact("got the block")
    child.expect_exact("> ")
    child.sendline("first part \\")
    child.expect_exact("... ")
    child.sendline("second part")
    child.expect_exact("got the continued line")
    child.expect_exact("> ")
    assert saved_user_messages(child, tmp_path / "m.json") == [
        "line one\nline two", "first part \nsecond part"]
    child.sendline("/tools")                      # shows them, removes nothing
    child.expect_exact("tools: functions.wait")
    child.expect_exact("> ")
    child.sendline("/tools none")
    child.expect_exact("tools: none")
    child.sendline("/effort")                     # no argument: shows the setting, changes nothing
    child.expect_exact("effort: low")
    child.sendline("/effort high")
    child.expect_exact("effort: high")
    child.sendline("/effort")
    child.expect_exact("effort: high")


def test_shown_reasoning_ends_its_line_before_the_answer(chat):
    child = chat(THINK.format("thinking it over") + FINAL.format("the answer"),
                 flags=("--show-reasoning",))
    child.sendline("question")
    child.expect_exact("thinking")
    child.expect(r"over(\x1b\[0m)?\r\nthe answer\r\n")   # the answer starts a new line


def test_answers_that_escalation_discards_are_marked(chat):
    child = chat(*(FINAL.format(f"answer {n}") for n in (1, 2, 3)), flags=("--effort", "auto"),
                 logprob=-3.0)                     # low confidence: low -> medium -> high
    child.sendline("question")
    for attempt in (1, 2):
        child.expect_exact(f"answer {attempt}")
        child.expect_exact(f"[attempt {attempt}'s answer above is discarded; trying again]")
    child.expect_exact("answer 3")
    child.expect_exact("> ")


def test_approve_asks_before_a_function_runs_and_a_no_reaches_the_model(chat, tmp_path):
    child = chat(call("functions.wait", '{"seconds": 0}'), FINAL.format("I could not wait."),
                 call("functions.wait", '{"seconds": 0}'), FINAL.format("Waited."),
                 flags=("--approve",))
    child.sendline("wait, please")
    child.expect_exact("→ functions.wait")
    child.expect_exact("run functions.wait? [y/N] ")
    child.sendline("n")
    child.expect_exact("✗ functions.wait")
    child.expect_exact("I could not wait.")
    child.expect_exact("> ")
    child.sendline("wait now")
    child.expect_exact("run functions.wait? [y/N] ")
    child.sendline("y")
    child.expect_exact("← functions.wait: done waiting")
    child.expect_exact("Waited.")
    child.expect_exact("> ")
    path = tmp_path / "approve.json"
    child.sendline(f"/save {path}")
    child.expect_exact(f"to {path}")
    tool_texts = [m["content"][0]["text"] for m in json.loads(path.read_text())["messages"]
                  if m["role"] == "tool"]
    assert "declined" in tool_texts[0] and tool_texts[1] == "done waiting"


def test_ctrl_c_stops_the_real_runtime_mid_generation(tmp_path, tiny_checkpoint):
    """A random checkpoint never ends its message: the turn generates until Ctrl-C stops it,
    and the same runtime then serves the next turn."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": CACHE, "TERM": "xterm",
           "INPUTRC": "/dev/null", "OMP_NUM_THREADS": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "agent", "--model", str(tiny_checkpoint), "--tools", "",
                                           "--effort", "low", "--max-tokens", "100000"],
                          cwd=str(ROOT), env=env, encoding="utf-8", timeout=120, dimensions=(40, 200))
    child.logfile_read = seen = io.StringIO()
    try:
        child.expect_exact("> ")
        for turn in (1, 2):
            child.sendline(f"say something, turn {turn}")
            child.expect_exact("[effort low")
            child.sendintr()
            child.expect_exact("[cancelled; the conversation keeps its 0 earlier messages]")
            child.expect_exact("> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "Traceback" not in seen.getvalue()     # an interrupt inside a finalizer is not shown
