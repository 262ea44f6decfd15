"""`python -m agent tool NAME ARGS`: output and exit status, as external checks use it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from agent.tools.cli import main

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


@needs_bwrap
def test_python_from_stdin_in_a_real_process():
    done = subprocess.run([sys.executable, "-m", "agent", "tool", "python", "-"],
                          input="x = 2\nprint(x + 2)\nx * 10", capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "4\n20\n", "")


def test_unknown_tool_and_bad_arguments_exit_2(capsys):
    assert main(["nope", "{}"]) == 2
    assert "unknown tool 'nope'" in capsys.readouterr().err
    assert main(["browser.open", "{id"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not valid JSON" in captured.err
    assert main(["browser.find", "{}"]) == 2
    assert "pattern: Field required" in capsys.readouterr().err
    assert main(["browser.teleport", "{}"]) == 2


def test_tools_that_cannot_be_set_up_exit_3(capsys, tmp_path):
    assert main(["browser.search", '{"query": "x"}', "--search-folder", str(tmp_path / "no")]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert main(["functions.f", "{}", "--tools", "no_such_module_xyz:f"]) == 3
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_tool_errors_still_exit_0(capsys, web):
    assert main(["browser.open", f'{{"id": "{web.base}/index.html"}}']) == 0  # no --allow-private
    assert "refusing to fetch 127.0.0.1" in capsys.readouterr().out


def test_browser_state_across_invocations(capsys, web, docs, tmp_path):
    state = str(tmp_path / "browser.json")
    common = ["--allow-private", "--search-folder", str(docs), "--state", state]
    assert main(["browser.search", '{"query": "Fredville"}', *common]) == 0
    assert capsys.readouterr().out.startswith("[0] Fredville\n")
    assert main(["browser.open", f'{{"id": "{web.base}/table.html"}}', *common]) == 0
    assert capsys.readouterr().out.startswith(f"[1] Planets ({web.base}/table.html)\n")
    assert main(["browser.find", '{"pattern": "jupiter"}', *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[2] Find results for text: `jupiter` in `Planets`")
    assert "【0†match at L6】" in out


def test_function_tools_loaded_by_module(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_tools.py").write_text(textwrap.dedent('''
        from agent.tools import tool

        @tool
        def add(a: int, b: int) -> int:
            """Adds."""
            return a + b
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["functions.add", '{"a": 1, "b": 2}', "--tools", "my_tools:add"]) == 0
    assert capsys.readouterr().out == "3\n"
    assert main(["functions.add", '{"a": "x"}', "--tools", "my_tools:add"]) == 2
    assert "a: Input should be a valid integer" in capsys.readouterr().err
