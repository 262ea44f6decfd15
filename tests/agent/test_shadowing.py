"""From the repository root (where `python -m pytest` and `python -m agent` put it on sys.path),
the top-level folders kernels/ model/ tools/ prompts/ are never importable under those names:
`import kernels` is Hugging Face's distribution (transformers 5 imports it), and a name with no
distribution installed does not exist. Each check runs in a fresh interpreter started there."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_at_root(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_checks_really_start_at_the_root():
    # `python -c` puts the working directory first on sys.path, like `python -m`.
    out = run_at_root("import sys, os; print(os.path.abspath(sys.path[0] or '.'))")
    assert out.stdout.strip() == ROOT
    assert os.path.isfile(os.path.join(ROOT, "kernels", "__init__.py"))


@pytest.mark.parametrize("agent_first", [False, True], ids=["kernels-first", "agent-first"])
def test_import_kernels_is_the_installed_distribution(agent_first):
    import kernels  # Hugging Face's; this test process does not run at the root
    installed = os.path.realpath(kernels.__file__)
    out = run_at_root(("import agent\n" if agent_first else "") +
                      "import kernels, agent.kernels\n"
                      "print(kernels.__file__); print(agent.kernels.__file__)")
    assert out.returncode == 0, out.stderr
    theirs, ours = out.stdout.split()
    assert os.path.realpath(theirs) == installed
    assert os.path.realpath(ours) == os.path.join(ROOT, "kernels", "__init__.py")


def test_transformers_gpt_oss_imports_at_the_root():
    out = run_at_root("from transformers import GptOssForCausalLM, Mxfp4Config\n"
                      "import agent.model, agent.kernels\nprint('ok')")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("name", ["model", "tools", "prompts"])
@pytest.mark.parametrize("agent_first", [False, True], ids=["name-first", "agent-first"])
def test_other_folders_are_not_top_level_packages(name, agent_first):
    out = run_at_root(("import agent\n" if agent_first else "") +
                      f"try:\n    import {name}\nexcept ModuleNotFoundError as e:\n"
                      f"    print('missing', e.name)\nelse:\n    print('found', {name}.__file__)\n"
                      f"import agent.{name}\nprint(agent.{name}.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["missing", name, f"agent.{name}"]
