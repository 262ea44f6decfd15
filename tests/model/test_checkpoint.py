"""Checkpoint loading: sharded and compact checkpoints; broken ones fail with one clear line."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from agent import model as runtime
from agent.model import CheckpointError
from agent.model.random import write_random

from .conftest import TINY_CONFIGS

ROUTER = "model.layers.1.mlp.router.weight"
BLOCKS = "model.layers.0.mlp.experts.down_proj_blocks"


@pytest.fixture
def broken(checkpoint, tmp_path):
    """A private copy of the tiny checkpoint with edit helpers."""
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint("base"), folder)
    weights = folder / "model.safetensors"

    class Edit:
        path = folder

        @staticmethod
        def tensors(change):
            tensors = load_file(weights)
            change(tensors)
            save_file(tensors, weights)

        @staticmethod
        def config(change):
            data = json.loads((folder / "config.json").read_text())
            change(data)
            (folder / "config.json").write_text(json.dumps(data))

    return Edit


def load_error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        runtime.load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_tensor(broken):
    broken.tensors(lambda t: t.pop(ROUTER))
    message = load_error(broken.path)
    assert "model.safetensors" in message and ROUTER in message and "missing" in message


def test_wrong_shape(broken):
    broken.tensors(lambda t: t.__setitem__(ROUTER, torch.zeros(3, 64, dtype=torch.bfloat16)))
    message = load_error(broken.path)
    assert "model.safetensors" in message and ROUTER in message and "[3, 64]" in message


def test_wrong_dtype(broken):
    broken.tensors(lambda t: t.__setitem__(BLOCKS, t[BLOCKS].float()))
    message = load_error(broken.path)
    assert "model.safetensors" in message and BLOCKS in message and "F32" in message


def test_truncated_file(broken):
    weights = broken.path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 1000])
    message = load_error(broken.path)
    assert "model.safetensors" in message and "truncated" in message and "'" in message
    weights.write_bytes(data[:5])
    assert "truncated" in load_error(broken.path)


def test_unknown_quant_method(broken):
    broken.config(lambda c: c["quantization_config"].__setitem__("quant_method", "gptq"))
    message = load_error(broken.path)
    assert "config.json" in message and "gptq" in message


def test_missing_config_field(broken):
    broken.config(lambda c: c.pop("num_local_experts"))
    message = load_error(broken.path)
    assert "config.json" in message and "num_local_experts" in message


def test_not_a_checkpoint(tmp_path, monkeypatch):
    assert "no such checkpoint folder" in load_error(tmp_path / "nothing")
    monkeypatch.setenv("HOME", str(tmp_path))  # a model name means the download folder
    monkeypatch.chdir(tmp_path)
    assert "python -m agent download gpt-oss-120b" in load_error("gpt-oss-120b")
    (tmp_path / "config.json").write_text("{not json")
    assert "config.json" in load_error(tmp_path)


def test_missing_shard(checkpoint, tmp_path):
    folder = tmp_path / "sharded"
    write_random(folder, TINY_CONFIGS["base"], shard_bytes=1)
    next(folder.glob("model-00002-*.safetensors")).unlink()
    message = load_error(folder)
    assert "model.safetensors.index.json" in message and "model-00002" in message


def test_sharded_checkpoint_equals_single_file(checkpoint, tmp_path):
    folder = tmp_path / "sharded"
    write_random(folder, TINY_CONFIGS["base"], shard_bytes=1)  # one shard per tensor group
    assert (folder / "model.safetensors.index.json").exists()
    assert len(list(folder.glob("model-*.safetensors"))) == 3
    tokens = list(range(30))
    single = runtime.load(checkpoint("base"), dtype=torch.float32).logits(tokens)
    assert torch.equal(runtime.load(folder, dtype=torch.float32).logits(tokens), single)


def compact_copy(full_folder, ids: torch.Tensor, tmp_path):
    """The checkpoint in the compact form: embedding rows for `ids` only."""
    tensors = load_file(full_folder / "model.safetensors")
    tensors["model.vocab_ids"] = ids
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[name] = tensors[name][ids].contiguous()
    compact = tmp_path / "compact"
    compact.mkdir()
    shutil.copy(full_folder / "config.json", compact / "config.json")
    save_file(tensors, compact / "model.safetensors")
    return compact


def test_compact_vocabulary_expands(checkpoint, tmp_path):
    """HF layout + model.vocab_ids: the model equals the full one whose other rows are zero;
    tokens without a row get logit -inf."""
    full_folder = checkpoint("base")
    ids = torch.tensor([5, 9, 17, 100, 101, 500, 1000], dtype=torch.int64)
    model = runtime.load(compact_copy(full_folder, ids, tmp_path), dtype=torch.float32)
    assert model.embed.shape == (len(ids) + 1, 64)  # the rows it has, plus one zero row
    prompt = [5, 9, 17, 100, 101, 500, 1000, 9, 5, 6]  # 6 has no row: it embeds as zeros
    got = model.logits(prompt)
    zeroed = runtime.load(full_folder, dtype=torch.float32)
    zeroed.embed[6] = 0.0
    want = zeroed.logits(prompt)
    assert got.shape == (len(prompt), 1024)
    assert torch.allclose(got[:, ids], want[:, ids], atol=1e-5)
    unknown = torch.ones(1024, dtype=torch.bool)
    unknown[ids] = False
    assert bool(torch.isneginf(got[:, unknown]).all())
    assert {g.token for g in model.generate(prompt, max_tokens=10, seed=0)} <= set(ids.tolist())


def test_compact_vocabulary_reads_what_it_lacks_spelled(checkpoint, tmp_path):
    """With the byte tokens kept, an id the checkpoint lacks is read as the smaller ids that
    spell it: generate computes what the full model computes on the spelled prompt, and the
    session cache holds the spelled prompt (so the next call reuses it)."""
    from agent.harmony import tokenizer as tk
    full_folder = checkpoint("base")
    ids = torch.tensor(list(range(256)) + [300, 417, 600, 911], dtype=torch.int64)
    model = runtime.load(compact_copy(full_folder, ids, tmp_path), dtype=torch.float32)
    prompt = [300, 1000, 417, 723, 1017, 5, 600]  # 1000, 723, 1017: no rows
    spelled = model.spell(prompt)
    assert set(spelled) <= set(ids.tolist()) and len(spelled) > len(prompt)
    assert tk.decode(spelled) == tk.decode(prompt)
    full = runtime.load(full_folder, dtype=torch.float32)
    want = full.logits(spelled)[-1, ids]
    first = next(model.generate(prompt, max_tokens=1, temperature=0.0))
    assert first.token == int(ids[torch.argmax(want)])
    assert model.cache.tokens[0] == spelled
    assert model.last_usage["prompt_tokens"] == len(spelled)
    list(model.generate(prompt + [5], max_tokens=1, temperature=0.0))
    assert model.last_usage["reused_tokens"] == len(spelled)
    rows = model.generate_batch([prompt, prompt[:2]], max_tokens=3, temperature=0.0)
    assert rows[0][0].token == first.token
    assert all(g.token in set(ids.tolist()) for row in rows for g in row)


def test_nano_name_loads_the_embedded_model():
    nano = pytest.importorskip("agent.model.nano")
    if not hasattr(nano, "path") or not (nano.path() / "config.json").exists():
        pytest.skip("the embedded model is not built yet")
    model = runtime.load("nano")
    assert model.logits([1, 2, 3]).shape[0] == 3


def test_released_pages_read_back_from_the_file(checkpoint):
    """After a converted tensor's pages are given back, its view still reads the file."""
    from agent.model.checkpoint import SafetensorsFiles
    store = SafetensorsFiles([checkpoint("base") / "model.safetensors"])
    name = "model.embed_tokens.weight"  # 128 KiB: whole pages inside it are dropped
    before = store.tensor(name).clone()
    store.release(name)
    assert torch.equal(store.tensor(name), before)
