"""The nano trainer's plumbing: batches sampled ahead by worker processes are the batches the
trainer would sample itself, and a short run (bf16 autocast included) leaves a checkpoint the
runtime's loader reads."""
from __future__ import annotations

import json
import math

import torch

from agent.model.nano import export, train


def test_worker_processes_sample_the_same_batches():
    vocab = train.build_vocab(200, 3, 0.8)
    recipe = dict(size=2, pool=2, realistic_share=0.8, session_share=0.3)
    alone = train.Batches(vocab, 11, workers=0, **recipe)
    ahead = train.Batches(vocab, 11, workers=2, **recipe)
    try:
        for step in range(4):
            mine, theirs = alone.get(step), ahead.get(step)
            assert all(torch.equal(a, b) for a, b in zip(mine, theirs)), step
        assert not torch.equal(alone.get(0)[1][:1, :8], alone.get(1)[1][:1, :8])
    finally:
        ahead.close()


def test_a_short_run_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "stage"
    train.main(["--out", str(out), "--steps", "2", "--batch", "2", "--vocab-examples", "200",
                "--realistic", "0.8", "--threads", "1", "--bf16", "--log-every", "1",
                "--hidden", "64", "--intermediate", "64", "--layers", "2", "--heads", "2",
                "--kv-heads", "1", "--experts", "4"])
    info = json.loads((out / "training.json").read_text())
    assert info["step"] == 2 and math.isfinite(info["loss"])
    model = export.load(out)
    assert model.cfg.num_hidden_layers == 2 and model.embed.shape[1] == 64
    logits = model.full_logits([200006, 1428, 200008])  # <|start|>user<|message|>
    assert logits.shape == (3, model.cfg.vocab_size) and torch.isfinite(logits).all()
