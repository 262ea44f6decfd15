"""MCP servers as users write them: the README's server (the mcp 2.x API this project
installs), and a server written with mcp 1.x (`FastMCP`) running in its own environment, which
`--mcp` reaches through the protocol whatever SDK version this side has."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpt-oss-agent" / "mcp1-venv"

MCP1_SERVER = '''
from mcp.server.fastmcp import FastMCP

app = FastMCP("legacy")

@app.tool()
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper() + "!"

if __name__ == "__main__":
    app.run()
'''


def agent_tool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "tool", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180)


def test_the_readme_mcp_server_runs_as_the_readme_says(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                 if "MCPServer(" in b and "app.run()" in b)
    (tmp_path / "my_mcp_server.py").write_text(block)
    line = next(l for l in readme.splitlines() if "--mcp \"python my_mcp_server.py\"" in l)
    command = shlex.split(line.split("#")[0])[4:]          # after `python -m agent tool`
    command[command.index("--mcp") + 1] = f"{sys.executable} my_mcp_server.py"
    done = agent_tool(*command, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "3\n"), done.stderr


@pytest.fixture(scope="module")
def mcp1_python() -> Path:
    """A venv with mcp 1.x only (kept in the cache between runs); skipped only when the
    package index cannot be reached."""
    python = CACHE / "bin" / "python"
    probe = [str(python), "-c", "import mcp.server.fastmcp, importlib.metadata as m; "
             "assert m.version('mcp').startswith('1.')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(CACHE)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "mcp>=1.9,<2"],
                             capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        if "Could not find a version" in install.stderr or "NewConnectionError" in install.stderr:
            pytest.skip("the package index cannot be reached for mcp 1.x")
        pytest.fail(install.stderr[-2000:])
    assert subprocess.run(probe, capture_output=True).returncode == 0
    return python


def test_an_mcp1_server_in_its_own_environment_works(mcp1_python, tmp_path):
    (tmp_path / "legacy.py").write_text(MCP1_SERVER)
    server = shlex.join([str(mcp1_python), str(tmp_path / "legacy.py")])
    done = agent_tool("functions.shout", '{"text": "hello"}', "--mcp", server, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "HELLO!\n"), done.stderr
