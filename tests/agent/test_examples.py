"""Every script in examples/ runs end to end (recorded completions stand in for the model;
the tools, parser, loop and session are the real ones)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import FINAL, THINK, call

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, completions: list[str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "completions.json"
    script.write_text(json.dumps({"completions": completions}))
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args, "--model", str(script)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_custom_tool(tmp_path):
    out = run_example("custom_tool.py", [
        call("functions.convert_currency", '{"amount": 120, "source": "EUR", "target": "XYZ"}'),
        call("functions.convert_currency", '{"amount": 120, "source": "EUR", "target": "USD"}'),
        FINAL.format("120 EUR is about 129.60 USD."),
    ], tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "unknown currency 'XYZ'" in lines[0]             # the tool's error went back to the model
    assert lines[1].endswith("-> 120 EUR = 129.60 USD")
    assert lines[-1] == "120 EUR is about 129.60 USD."


def test_structured_multi_step_script(tmp_path):
    items = {"items": [{"name": "notebook", "quantity": 2, "unit_price": 3.5},
                       {"name": "pen", "quantity": 1, "unit_price": 1.25},
                       {"name": "eraser", "quantity": 3, "unit_price": 0.4}]}
    out = run_example("structured_steps.py", [
        THINK.format("Extract items.") + FINAL.format(json.dumps(items)),
        FINAL.format("Your order is confirmed."),                  # fails the check ...
        FINAL.format("Your order total of $9.45 is confirmed."),   # ... so it is retried higher
    ], tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 x notebook @ 3.50" in out.stdout and "total: 9.45" in out.stdout
    assert "effort): Your order total of $9.45 is confirmed." in out.stdout
    assert "(low effort)" not in out.stdout


def test_browser_research_on_a_local_folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "otters.txt").write_text("Sea otters\n\nSea otters hold hands so they do not drift apart.\n")
    out = run_example("browser_research.py", [
        call("browser.search", '{"query": "sea otters hold hands"}'),
        call("browser.open", '{"id": 0}'),
        FINAL.format("So they do not drift apart【1†L3】."),
    ], "Why do sea otters hold hands?", "--docs", str(docs), tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "[browser.search]" in out.stdout and "[browser.open]" in out.stdout
    assert "So they do not drift apart【1†L3】." in out.stdout
    assert "【1†L3】" in out.stdout.splitlines()[-1] and "otters.txt" in out.stdout.splitlines()[-1]


def test_python_tool(tmp_path):
    code = "a, b = 0, 1\nfor _ in range(20):\n    a, b = b, a + b\nprint(a)"
    out = run_example("python_tool.py", [
        call("python", code, channel="analysis", json=False),
        FINAL.format("The 20th Fibonacci number is 6765."),
    ], tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert ">>> a, b = 0, 1" in out.stdout
    assert "\n6765\n" in out.stdout
    assert out.stdout.rstrip().endswith("The 20th Fibonacci number is 6765.")


def test_the_readme_python_api_example_ends_on_the_embedded_model(tmp_path):
    """The README's example as a user pastes it, on the embedded model: every run in it ends
    inside its budget (its typed answer once ran 8,192 tokens of an undeclared key, and the
    whole example 2-3 minutes; now seconds). What it answers is the small model's business."""
    import re
    readme = (ROOT / "README.md").read_text()
    api = readme[readme.index("## The Python API"):]
    code = re.search(r"```python\n(.*?)```", api, re.S).group(1)
    code += ("\nassert result.stop_reason == 'done', result.reason"
             "\nassert typed.stop_reason in ('done', 'invalid_output'), typed.reason"
             "\nprint('TYPED', typed.usage.generated_tokens)\n")
    (tmp_path / "example.py").write_text(code)
    out = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True,
                         timeout=240, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split("TYPED")[-1]) < 8192
    assert (tmp_path / "chat.json").exists()        # the session was saved where it said
