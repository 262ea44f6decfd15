"""The python tool as the model uses it: state, notebook display, output, description."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from agent.tools import Toolbox
from agent.tools.python import Limits, PythonTool

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def python():
    tool = PythonTool(timeout=20, limits=Limits(output_chars=3000))
    yield tool
    tool.session.close()


def test_state_persists_and_last_expression_is_shown(python):
    assert python.run("import math\nx = 6\ndef f(n):\n    return n * 7") == "(no output)"
    assert python.run("f(x)") == "42"
    assert python.run("print('a'); print('b')\nx + 1") == "a\nb\n7"
    assert python.run("y = f(x)") == "(no output)"  # assignments show nothing
    assert python.run("None") == "(no output)"
    assert python.run("_ = 0\n[y, math.pi]") == "[42, 3.141592653589793]"
    assert python.run("for i in range(3): i") == "(no output)"  # only a final expression


def test_errors_come_back_as_tracebacks(python):
    out = python.run("def g():\n    return 1 / 0\ng()")
    assert out.startswith("Traceback (most recent call last):")
    assert 'File "<cell>", line 3, in <module>' in out and "return 1 / 0" in out
    assert out.endswith("ZeroDivisionError: division by zero")
    assert "worker.py" not in out
    syntax = python.run("def (:")
    assert "SyntaxError" in syntax and "worker.py" not in syntax
    assert python.run("import sys; print('err', file=sys.stderr)") == "err"
    assert python.run("raise SystemExit(2)") == "SystemExit: 2"
    assert python.run("x") == "6"  # neither error lost the state


def test_long_output_is_cut_in_the_middle_with_a_note(python):
    out = python.run("print('HEAD'); print('x' * 20000); print('TAIL')")
    assert out.startswith("HEAD") and out.endswith("TAIL")
    assert "bytes of output omitted ...]" in out and len(out) < 3200


def test_workspace_files_persist(python):
    python.run("open('/mnt/data/notes.txt', 'w').write('hello')")
    assert (python.session.workspace / "notes.txt").read_text() == "hello"
    assert python.run("open('notes.txt').read()") == "'hello'"


def test_toolbox_dispatch_and_system_message_config(python):
    box = Toolbox([python])
    result = asyncio.run(box.call("python", "21 * 2"))
    assert result.text == "42" and not result.error and box.author_for("python") == "python"
    assert asyncio.run(box.call("python", "```python\nprint('fenced')\n```")).text == "fenced"
    config = box.namespace_configs()[0]
    assert config.name == "python" and config.tools == []
    assert "time out after 20.0 seconds" in config.description
    assert "Internet access for this session is disabled." in config.description
    assert config.description.startswith("Use this tool to execute Python code in your chain")


def test_description_keeps_the_trained_wording(harmony_encoding):
    from openai_harmony import ToolNamespaceConfig
    theirs = ToolNamespaceConfig.python().description
    tool = PythonTool(timeout=120)
    try:
        ours = tool.description
    finally:
        tool.session.close()
    assert ours == theirs.replace("Internet access for this session is UNKNOWN. Depends on the "
                                  "cluster.", "Internet access for this session is disabled.")
