"""Random tiny checkpoints for the runtime tests (written once per session, cached by key)."""
from __future__ import annotations

import pytest
import torch

from agent.model.config import GptOssConfig, preset
from agent.model.random import write_random


# Four tiny architectures that differ where bugs hide: GQA ratio, top-k, windows, layer order,
# YaRN constants (original context far below the tested positions), widths that are not powers
# of two, truncated and untruncated YaRN ranges.
TINY_CONFIGS = {
    "base": preset("tiny"),
    "mha_topk4": preset("tiny", num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
                        head_dim=32, num_local_experts=8, num_experts_per_tok=4, sliding_window=4,
                        layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
    "wide_top1": preset("tiny", hidden_size=96, intermediate_size=32, num_attention_heads=6,
                        num_key_value_heads=3, head_dim=8, num_local_experts=6,
                        num_experts_per_tok=1, sliding_window=16, rope_factor=8.0,
                        rope_original_context=32, rope_truncate=True, vocab_size=512),
    "deep_longrope": preset("tiny", num_hidden_layers=4, num_local_experts=16,
                            num_experts_per_tok=4, sliding_window=16, rope_original_context=16,
                            rope_theta=10000.0, swiglu_limit=3.0, vocab_size=700),
}


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """checkpoint(name_or_config, layout="hf", experts="mxfp4", seed=0) -> folder."""
    made = {}

    def make(config: str | GptOssConfig = "base", layout: str = "hf", experts: str = "mxfp4",
             seed: int = 0):
        cfg = TINY_CONFIGS[config] if isinstance(config, str) else config
        key = (repr(cfg), layout, experts, seed)
        if key not in made:
            out = tmp_path_factory.mktemp("ckpt")
            write_random(out, cfg, layout=layout, experts=experts, seed=seed)
            made[key] = out
        return made[key]

    return make


def pytest_configure(config):
    config.addinivalue_line("markers", "default_kernels: run on the dispatched (fast) kernels")


@pytest.fixture(autouse=True)
def reference_kernels_only(request):
    """These tests check the model itself, so they run on the reference kernels (the fast
    kernels are compared against the reference in tests/kernels), unless marked."""
    from agent.kernels import reference_kernels
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread beats two on a shared, busy machine
    try:
        if request.node.get_closest_marker("default_kernels"):
            yield
        else:
            with reference_kernels():
                yield
    finally:
        torch.set_num_threads(threads)
