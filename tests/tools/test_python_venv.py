"""The sandbox works for an interpreter that lives under /tmp (a venv there, as CI systems
and users make them): the sandbox's private /tmp must not hide it."""
from __future__ import annotations

import shutil
import site
import subprocess
import venv
from pathlib import Path

import pytest


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_python_tool_runs_from_a_venv_under_tmp(tmp_path):
    assert str(tmp_path).startswith("/tmp/")
    venv.EnvBuilder(system_site_packages=True, symlinks=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    # A venv made from a venv's interpreter sees the *base* interpreter's packages: when the
    # project is installed in a venv (as the README's users install it), hand the new one this
    # interpreter's site-packages too (a .pth file runs its `import` lines at startup).
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "outer-site.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in site.getsitepackages())
        + "\n")
    out = subprocess.run([str(python), "-c",
                          "import sys; from agent.tools.python.tool import PythonTool\n"
                          "tool = PythonTool(timeout=20)\n"
                          "print(tool.run('import sys; print(sys.prefix); 6 * 7'))\n"
                          "tool.session.close()"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "venv") in out.stdout and "42" in out.stdout, out.stdout
