"""Runs triton_cases.py (the Triton kernels against the reference) under TRITON_INTERPRET=1.

A fresh process, because the interpreter has to be on before triton's first import and other
test modules import triton through transformers.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("triton_cases.py")


def test_triton_kernels_in_the_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(CASES)],
                         env=env, capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
