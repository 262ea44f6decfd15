"""The nano trainer's module is the gpt-oss architecture: checked against transformers'
GptOssForCausalLM (the independent oracle) through the exported compact checkpoint."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from agent.model import mxfp4
from agent.model.nano import export
from agent.model.nano.mxfp4_fake import fake_quantize
from agent.model.nano.modeling import NanoGptOss, nano_config


def random_model(seed: int = 0, window: int = 8) -> NanoGptOss:
    torch.manual_seed(seed)
    model = NanoGptOss(nano_config(sliding_window=window, hidden_size=64, intermediate_size=64),
                       torch.randperm(201088)[:300].sort().values)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.set_fake_quant(True)
    return model.eval()


def test_logits_match_transformers_gpt_oss(tmp_path):
    import transformers
    model = random_model()
    export.save(model, tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    hf.pop("quantization_config")
    config = transformers.GptOssConfig(**hf)
    config._attn_implementation = "eager"
    oracle = transformers.GptOssForCausalLM(config).eval()
    state = load_file(str(tmp_path / "model.safetensors"))
    ids = state.pop("model.vocab_ids")
    dense = {}
    for name, value in state.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            full = torch.zeros(config.vocab_size, config.hidden_size)
            full[ids] = value
            dense[name] = full
        elif name.endswith("_blocks"):
            base = name.removesuffix("_blocks")
            # checkpoint rows are [E, out, in]; transformers keeps [E, in, out]
            dense[base] = mxfp4.dequantize(value, state[base + "_scales"]).transpose(1, 2)
        elif not name.endswith("_scales"):
            dense[name] = value
    missing, unexpected = oracle.load_state_dict(dense, strict=False)
    assert not missing and not unexpected
    tokens = ids[torch.randint(0, len(ids), (40,), generator=torch.Generator().manual_seed(1))]
    with torch.no_grad():
        expected = oracle(tokens[None]).logits[0]
    # 40 tokens > sliding window 8: both layer kinds and the sinks matter
    torch.testing.assert_close(model.full_logits(tokens.tolist()), expected, atol=2e-5, rtol=1e-4)


def test_shared_prefix_equals_separate_sequences():
    model = random_model(window=8)
    local = torch.randint(0, 300, (30,))
    whole = model(local[:0], local[None].repeat(3, 1))
    split = model(local[:13], local[13:][None].repeat(3, 1))
    torch.testing.assert_close(split, whole[:, 13:], atol=1e-5, rtol=1e-5)


def test_unseen_ids_share_of_the_softmax_is_the_extra_logit():
    model = random_model()
    tokens = model.vocab_ids[:12].tolist()
    full = torch.log_softmax(model.full_logits(tokens), -1)[:, model.vocab_ids]
    hidden = model(model.to_local(torch.tensor(tokens))[:0], model.to_local(torch.tensor(tokens))[None])
    reduced = torch.log_softmax(model.local_logits(hidden[0]), -1)[:, :-1]
    torch.testing.assert_close(reduced, full, atol=1e-4, rtol=1e-4)


def test_export_reload_gives_the_same_model(tmp_path):
    model = random_model()
    export.save(model, tmp_path)
    tokens = model.vocab_ids[torch.arange(0, 300, 7)].tolist()
    torch.testing.assert_close(export.load(tmp_path).full_logits(tokens), model.full_logits(tokens))


def test_fake_quantize_rounds_forward_and_passes_gradient_straight():
    w = torch.randn(3, 8, 64, requires_grad=True)
    q = fake_quantize(w)
    assert torch.equal(q.detach(), mxfp4.dequantize(*mxfp4.quantize(w.detach())))
    assert not torch.equal(q.detach(), w.detach())
    (q * torch.arange(64.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(64.0).expand(3, 8, 64))


def test_out_of_vocabulary_token_is_named():
    model = random_model()
    unknown = next(i for i in range(201088) if i not in set(model.vocab_ids.tolist()))
    with pytest.raises(ValueError, match=f"token id {unknown} is not in the nano vocabulary"):
        model.to_local(torch.tensor([unknown]))
