"""The sandbox works for an interpreter that lives under /tmp (a venv there, as CI systems
and users make them): the sandbox's private /tmp must not hide it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import venv

import pytest


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_python_tool_runs_from_a_venv_under_tmp(tmp_path):
    assert str(tmp_path).startswith("/tmp/")
    venv.EnvBuilder(system_site_packages=True, symlinks=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    out = subprocess.run([str(python), "-c",
                          "import sys; from agent.tools.python.tool import PythonTool\n"
                          "tool = PythonTool(timeout=20)\n"
                          "print(tool.run('import sys; print(sys.prefix); 6 * 7'))\n"
                          "tool.session.close()"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "venv") in out.stdout and "42" in out.stdout, out.stdout
