"""NanoGptOss <-> compact Hugging Face gpt-oss checkpoint (config.json + model.safetensors).

The compact form is the HF layout (MXFP4 expert blocks/scales, everything else float32)
with `model.embed_tokens.weight` and `lm_head.weight` holding only the rows of the ids in
the int64 tensor `model.vocab_ids`; every other row of the full model is zero.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from agent.model import mxfp4
from agent.model.config import GptOssConfig
from agent.model.nano.modeling import NanoGptOss

def hf_state_dict(model: NanoGptOss) -> dict[str, torch.Tensor]:
    state = {"model.vocab_ids": model.vocab_ids.long(),
             "model.embed_tokens.weight": model.embed, "lm_head.weight": model.lm_head,
             "model.norm.weight": model.norm}
    for n, layer in enumerate(model.layers):
        p = f"model.layers.{n}."
        state[p + "input_layernorm.weight"] = layer.input_norm
        state[p + "post_attention_layernorm.weight"] = layer.post_attention_norm
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            lin = getattr(layer.attn, name)
            state[p + f"self_attn.{name}.weight"] = lin.weight
            state[p + f"self_attn.{name}.bias"] = lin.bias
        state[p + "self_attn.sinks"] = layer.attn.sinks
        mlp = layer.mlp
        state[p + "mlp.router.weight"] = mlp.router.weight
        state[p + "mlp.router.bias"] = mlp.router.bias
        for name, weight, bias in (("gate_up_proj", mlp.gate_up_weight, mlp.gate_up_bias),
                                   ("down_proj", mlp.down_weight, mlp.down_bias)):
            blocks, scales = mxfp4.quantize(weight)
            state[p + f"mlp.experts.{name}_blocks"] = blocks
            state[p + f"mlp.experts.{name}_scales"] = scales
            state[p + f"mlp.experts.{name}_bias"] = bias
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save(model: NanoGptOss, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**model.cfg.to_hf(), "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # the embedded model decodes greedily (a small model's samples wander)
    (folder / "generation_config.json").write_text(json.dumps({"do_sample": False}) + "\n")
    tmp = folder / "model.safetensors.tmp"
    save_file(hf_state_dict(model), str(tmp), metadata={"format": "pt"})
    tmp.replace(folder / "model.safetensors")  # atomic: a reader never sees half a file


def load(folder: str | Path) -> NanoGptOss:
    """The training module with the checkpoint's (MXFP4-rounded) weights."""
    folder = Path(folder)
    cfg = GptOssConfig.from_hf(json.loads((folder / "config.json").read_text()))
    state = load_file(str(folder / "model.safetensors"))
    model = NanoGptOss(cfg, state["model.vocab_ids"])
    model.embed.data.copy_(state["model.embed_tokens.weight"])
    model.lm_head.data.copy_(state["lm_head.weight"])
    model.norm.data.copy_(state["model.norm.weight"])
    for n, layer in enumerate(model.layers):
        p = f"model.layers.{n}."
        layer.input_norm.data.copy_(state[p + "input_layernorm.weight"])
        layer.post_attention_norm.data.copy_(state[p + "post_attention_layernorm.weight"])
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            lin = getattr(layer.attn, name)
            lin.weight.data.copy_(state[p + f"self_attn.{name}.weight"])
            lin.bias.data.copy_(state[p + f"self_attn.{name}.bias"])
        layer.attn.sinks.data.copy_(state[p + "self_attn.sinks"])
        mlp = layer.mlp
        mlp.router.weight.data.copy_(state[p + "mlp.router.weight"])
        mlp.router.bias.data.copy_(state[p + "mlp.router.bias"])
        for name, weight, bias in (("gate_up_proj", mlp.gate_up_weight, mlp.gate_up_bias),
                                   ("down_proj", mlp.down_weight, mlp.down_bias)):
            weight.data.copy_(mxfp4.dequantize(state[p + f"mlp.experts.{name}_blocks"],
                                                    state[p + f"mlp.experts.{name}_scales"]))
            bias.data.copy_(state[p + f"mlp.experts.{name}_bias"])
    model.set_fake_quant(True)
    return model.eval()
