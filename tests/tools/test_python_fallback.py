"""Without bubblewrap the python tool refuses to start, unless the user explicitly opts out."""
from __future__ import annotations

import pytest

from agent.tools.python import PythonTool, SandboxUnavailable


def test_missing_bwrap_refuses_unless_opted_out(tmp_path, monkeypatch):
    with pytest.raises(SandboxUnavailable, match="bubblewrap .* not found at /nonexistent/bwrap"):
        PythonTool(bwrap="/nonexistent/bwrap")
    tool = PythonTool(sandbox="none", timeout=10, workspace=tmp_path)
    try:
        assert tool.run("import os; os.getcwd()") == repr(str(tmp_path))
        assert "Internet access for this session is UNKNOWN" in tool.description
    finally:
        tool.session.close()
    monkeypatch.setenv("GPT_OSS_AGENT_PYTHON_SANDBOX", "none")
    tool = PythonTool(bwrap="/nonexistent/bwrap")  # the environment opted out explicitly
    assert tool.session.sandbox == "none"
    tool.session.close()
