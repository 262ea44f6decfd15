"""Command lines (random checkpoints, download) and the packed-experts memory promise."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from agent import model as runtime
from agent.model.config import preset
from agent.model.random import write_random


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_random_cli_writes_the_original_layout(tmp_path):
    result = run("agent.model.random", "--config", "tiny", "--layers", "3", "--out",
                 str(tmp_path), "--layout", "original")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "original" / "config.json").read_text())
    assert config["num_hidden_layers"] == 3 and config["num_experts"] == 4
    from agent.model.checkpoint import SafetensorsFiles
    names = SafetensorsFiles(list((tmp_path / "original").glob("*.safetensors"))).infos
    # the names of openai/gpt-oss's reference implementation (gpt_oss/torch/model.py, weights.py)
    assert {n for n in names if n.startswith("block.0.")} == {
        "block.0.attn.norm.scale", "block.0.attn.qkv.weight", "block.0.attn.qkv.bias",
        "block.0.attn.sinks", "block.0.attn.out.weight", "block.0.attn.out.bias",
        "block.0.mlp.norm.scale", "block.0.mlp.gate.weight", "block.0.mlp.gate.bias",
        "block.0.mlp.mlp1_weight.blocks", "block.0.mlp.mlp1_weight.scales", "block.0.mlp.mlp1_bias",
        "block.0.mlp.mlp2_weight.blocks", "block.0.mlp.mlp2_weight.scales", "block.0.mlp.mlp2_bias"}
    assert {"embedding.weight", "norm.scale", "unembedding.weight"} <= set(names)
    assert names["block.2.attn.qkv.weight"].shape == ((4 + 2 * 2) * 16, 64)
    assert names["block.0.mlp.mlp1_weight.blocks"].shape == (4, 128, 2, 16)
    assert names["block.0.mlp.mlp1_weight.blocks"].dtype == "U8"
    model = runtime.load(tmp_path)  # the parent folder of original/ is accepted
    assert model.config.num_hidden_layers == 3 and model.config.layer_types[2] == "sliding_attention"


def test_download_says_clearly_when_offline(tmp_path):
    result = run("agent", "download", "gpt-oss-20b", "--dir", str(tmp_path / "w"),
                 env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("download: cannot download openai/gpt-oss-20b") and "offline" in line


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_20b_shaped_layer_keeps_experts_packed(tmp_path):
    """A 20b-shaped layer (32 experts of 2880 x 5760): the experts stay packed MXFP4 in memory
    (copied once into huge pages at load, never dequantized into a bf16 copy)."""
    config = preset("20b", num_hidden_layers=1, vocab_size=4096)
    write_random(tmp_path, config)
    expert_bytes = 32 * (5760 + 2880) * 90 * 17  # blocks + scales
    dense_bytes = 2 * 2880 * (4096 + 2 * 512 + 4096 + 4096)  # attention + unembedding, bf16
    before = rss_bytes()
    model = runtime.load(tmp_path, dtype=torch.bfloat16)
    assert model.dense_experts is False
    after_load = rss_bytes()
    assert after_load - before < expert_bytes + dense_bytes + (40 << 20)
    tokens = [g.token for g in model.generate([1], max_tokens=2, temperature=0)]
    assert len(tokens) == 2
    # Decoding adds work space only (75-240 MB measured: kernels, allocator arenas); a bf16
    # copy of the layer's 32 experts would add 1.6 GB.
    assert rss_bytes() - after_load < 400 << 20


def advised_huge_pages(address: int) -> bool:
    """Whether the mapping that holds `address` is advised to use huge pages: the kernel's own
    view ("hg" among its VmFlags in /proc/self/smaps)."""
    inside = False
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            return "hg" in line.split()[1:]
    return False


def test_streamed_weights_and_their_int8_forms_go_into_huge_pages():
    """A big model's dense matrices are streamed every token: kept as loaded or converted to
    8 bits (dense="int8"), they are copied into memory advised for huge pages (the int8 form's
    bytes as much as a plain tensor); small ones stay where they are."""
    from agent.kernels import Int8Weight
    from agent.model.weights import WeightPlacement
    tensors = {"big": torch.randn(2048, 1024), "small": torch.randn(64, 64)}
    place = WeightPlacement(tensors, torch.device("cpu"), torch.bfloat16, Int8Weight.quantize,
                            huge_pages=True, pack_experts=True)
    assert advised_huge_pages(place.weight("big").data_ptr())
    int8 = place.matrix("big")
    assert isinstance(int8, Int8Weight) and advised_huge_pages(int8.q.data_ptr())
    assert torch.equal(int8.q, Int8Weight.quantize(tensors["big"].bfloat16()).q)
    assert not advised_huge_pages(place.matrix("small").q.data_ptr())
