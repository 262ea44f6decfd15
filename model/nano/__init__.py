"""The embedded nano model: a tiny gpt-oss (same architecture, tokenizer and MXFP4 experts)
trained here on synthetic Harmony agent transcripts, shipped as package data so that
`python -m agent` and `Agent()` work offline. Real use is gpt-oss-20b/120b.

`path()` is the folder holding config.json + model.safetensors (a compact checkpoint:
embedding/unembedding rows only for the ids the model was trained on, listed in
`model.vocab_ids`; `agent.model.load` expands them).
"""
from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent


def path() -> Path:
    """The folder with the shipped config.json and model.safetensors."""
    return WEIGHTS_DIR
