"""Shared test set-up: openai-harmony (the format oracle) reads the vocabulary offline; and
`wait_until`, the one polling helper.

openai-harmony downloads o200k_base.tiktoken unless TIKTOKEN_ENCODINGS_BASE names a folder
holding it. At start-up we write the sha256-checked packaged copy into a temporary
folder and point the variable there, so no test ever touches the network.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

_VOCAB_DIR: str | None = None


def pytest_configure(config):
    global _VOCAB_DIR
    from agent.harmony.tokenizer import read_vocabulary_bytes

    _VOCAB_DIR = tempfile.mkdtemp(prefix="o200k-")
    with open(os.path.join(_VOCAB_DIR, "o200k_base.tiktoken"), "wb") as f:
        f.write(read_vocabulary_bytes())
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = _VOCAB_DIR


def pytest_unconfigure(config):
    if _VOCAB_DIR:
        shutil.rmtree(_VOCAB_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiktoken_encodings_base() -> str:
    """The folder holding o200k_base.tiktoken (TIKTOKEN_ENCODINGS_BASE)."""
    return os.environ["TIKTOKEN_ENCODINGS_BASE"]


@pytest.fixture(scope="session")
def harmony_encoding(tiktoken_encodings_base):
    """openai-harmony's HarmonyEncoding for HARMONY_GPT_OSS, loaded offline."""
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(predicate())
