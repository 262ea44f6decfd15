"""Logits and greedy generation equal transformers' GptOssForCausalLM on the same checkpoint.

transformers loads the MXFP4 checkpoint with Mxfp4Config(dequantize=True) in float32 on CPU
(its own dequantization); we keep experts packed and dequantize only the selected ones.
Sequences run past the sliding window and past original_max_position_embeddings (YaRN).
"""
from __future__ import annotations

import pytest
import torch
import transformers  # noqa: F401 (the oracle; the test extra brings it: never skipped)

from agent import model as runtime

from .conftest import TINY_CONFIGS


def hf_model(folder):
    from transformers import GptOssForCausalLM, Mxfp4Config
    from transformers.utils import logging
    logging.set_verbosity_error()
    model = GptOssForCausalLM.from_pretrained(
        folder, dtype=torch.float32, quantization_config=Mxfp4Config(dequantize=True))
    return model.eval()


def prompt(config, length, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (length,), generator=gen).tolist()


def hf_greedy(model, tokens, steps):
    """Greedy decoding by full recomputation: independent of either cache implementation."""
    tokens = list(tokens)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([tokens])).logits[0, -1]
            out.append(int(logits.argmax()))
            tokens.append(out[-1])
    return out


@pytest.mark.parametrize("name", list(TINY_CONFIGS))
def test_logits_and_greedy_match_transformers(checkpoint, name):
    check_against_transformers(checkpoint, name)


@pytest.mark.default_kernels
def test_dispatched_kernels_match_transformers_in_float32(checkpoint):
    """A float32 model on whatever agent.kernels dispatches to here stays within the oracle's
    tolerance too (the fast CPU path must not round float32 activations to bf16)."""
    check_against_transformers(checkpoint, "mha_topk4")


def check_against_transformers(checkpoint, name):
    config = TINY_CONFIGS[name]
    folder = checkpoint(name)
    ours = runtime.load(folder, dtype=torch.float32, experts="packed")
    theirs = hf_model(folder)
    length = max(3 * config.sliding_window, config.rope_original_context + 20)
    tokens = prompt(config, length)
    assert length > config.rope_original_context and length > config.sliding_window

    with torch.no_grad():
        expected = theirs(torch.tensor([tokens])).logits[0].float()
    got = ours.logits(tokens)
    assert got.shape == (length, config.vocab_size) and got.dtype == torch.float32
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-3 * scale

    generated = [g.token for g in ours.generate(tokens, max_tokens=32, temperature=0)]
    assert generated == hf_greedy(theirs, tokens, 32)


def test_several_experts_are_used(checkpoint):
    """The oracle comparison is meaningful only if routing spreads tokens over experts."""
    from agent.kernels.reference import route
    config = TINY_CONFIGS["deep_longrope"]
    model = runtime.load(checkpoint("deep_longrope"), dtype=torch.float32)
    layer = model.layers[0]
    x = model.embed[torch.tensor(prompt(config, 64))]
    _, index = route(x, layer.router_weight, layer.router_bias, config.num_experts_per_tok)
    assert index.shape == (64, 4) and len(torch.unique(index)) >= 8


def test_original_and_float_layouts_give_the_same_model(checkpoint):
    """The same random tensors written as HF/MXFP4, original/MXFP4 and HF/bf16 experts
    (quantized on load) produce identical logits."""
    tokens = prompt(TINY_CONFIGS["base"], 40)
    reference = runtime.load(checkpoint("base"), dtype=torch.float32).logits(tokens)
    for layout, experts in (("original", "mxfp4"), ("hf", "float")):
        model = runtime.load(checkpoint("base", layout, experts), dtype=torch.float32)
        assert torch.equal(model.logits(tokens), reference), (layout, experts)


def test_bf16_is_close_to_float32(checkpoint):
    tokens = prompt(TINY_CONFIGS["base"], 40)
    folder = checkpoint("base")
    exact = runtime.load(folder, dtype=torch.float32).logits(tokens)
    half = runtime.load(folder, dtype=torch.bfloat16).logits(tokens)
    assert half.dtype == torch.float32
    assert (half - exact).abs().max() <= 0.1 * exact.abs().max()


def test_checkpoint_saved_dequantized_by_transformers(checkpoint, tmp_path):
    """transformers' own save of the dequantized model (bf16 `gate_up_proj`/`down_proj`, no
    quantization_config, rope_parameters) loads, is re-quantized, and gives the same logits."""
    folder = checkpoint("base")
    from transformers import GptOssForCausalLM, Mxfp4Config
    saved = GptOssForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16, quantization_config=Mxfp4Config(dequantize=True))
    saved.save_pretrained(tmp_path)
    tokens = prompt(TINY_CONFIGS["base"], 30)
    want = runtime.load(folder, dtype=torch.float32).logits(tokens)
    assert torch.equal(runtime.load(tmp_path, dtype=torch.float32).logits(tokens), want)


@pytest.mark.default_kernels
def test_dispatched_kernels_agree_with_the_reference(checkpoint):
    """Whatever agent.kernels dispatches to on this machine (fast CPU path if built) keeps the
    interface: same shapes, bf16-close logits, packed experts accepted."""
    from agent.kernels import reference_kernels
    tokens = prompt(TINY_CONFIGS["mha_topk4"], 24)
    model = runtime.load(checkpoint("mha_topk4"), dtype=torch.bfloat16, experts="packed")
    fast = model.logits(tokens)
    with reference_kernels():
        reference = model.logits(tokens)
    assert fast.shape == reference.shape
    assert (fast - reference).abs().max() <= 0.05 * reference.abs().max()


def test_small_models_run_on_one_thread_and_restore_the_setting(checkpoint):
    model = runtime.load(checkpoint("base"))
    assert model.threads == 1
    torch.set_num_threads(2)
    model.logits([1, 2, 3])
    assert torch.get_num_threads() == 2


def test_int8_dense_weights_stay_close(checkpoint):
    """dense="int8": attention, embedding and unembedding in 8 bits (per-32 scales); matrices
    whose width is not a multiple of 32 stay as they are."""
    from agent.kernels import Int8Weight
    tokens = prompt(TINY_CONFIGS["base"], 40)
    folder = checkpoint("base")
    exact = runtime.load(folder, dtype=torch.float32).logits(tokens)
    model = runtime.load(folder, dtype=torch.float32, dense="int8")
    assert isinstance(model.unembed, Int8Weight) and isinstance(model.layers[0].qkv_weight, Int8Weight)
    assert (model.logits(tokens) - exact).abs().max() <= 0.05 * exact.abs().max()
    # the unembedding alone: the layers stay exact, the logits as close
    head = runtime.load(folder, dtype=torch.float32, dense="int8-unembedding")
    assert isinstance(head.unembed, Int8Weight) and isinstance(head.layers[0].qkv_weight, torch.Tensor)
    assert (head.logits(tokens) - exact).abs().max() <= 0.02 * exact.abs().max()
    wide = runtime.load(checkpoint("wide_top1"), dtype=torch.float32, dense="int8")
    assert isinstance(wide.layers[0].o_weight, torch.Tensor)  # in = 6 heads x 8 = 48
    with pytest.raises(ValueError, match="dense must be"):
        runtime.load(folder, dense="int4")


def test_the_dense_mode_can_come_from_the_environment(checkpoint, monkeypatch):
    """$GPT_OSS_AGENT_DENSE switches every entry point that loads with dense=None; an explicit
    argument wins; a bad value names the variable."""
    from agent.kernels import Int8Weight
    folder = checkpoint("base")
    monkeypatch.setenv("GPT_OSS_AGENT_DENSE", "int8")
    assert isinstance(runtime.load(folder, dtype=torch.float32).unembed, Int8Weight)
    assert isinstance(runtime.load(folder, dtype=torch.float32, dense="bf16").unembed, torch.Tensor)
    monkeypatch.setenv("GPT_OSS_AGENT_DENSE", "int4")
    with pytest.raises(ValueError, match="GPT_OSS_AGENT_DENSE=int4: must be one of bf16, fp32, int8"):
        runtime.load(folder)
