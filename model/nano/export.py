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
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def save(model: NanoGptOss, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**model.cfg.to_hf(), "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
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


IDENTIFIER_PIECES = (r"_[a-z]{2,14}", r"[a-z]{2,14}", r"[A-Z][a-z]{2,14}", r" [a-z]{2,14}",
                     r" [A-Z][a-z]{2,14}")


def identifier_ids(have: set[int], budget: int) -> list[int]:
    """Up to `budget` ids not in `have` that spell parts of English identifiers and values
    (`_weather`, `track`, `Munich`), snake_case pieces first, lower ids (earlier BPE merges,
    commoner text) first within each kind."""
    import re

    from agent.harmony import tokenizer as tk
    kinds = [re.compile(p) for p in IDENTIFIER_PIECES]
    found: list[list[int]] = [[] for _ in kinds]
    for i in range(tk.VOCAB_SIZE):
        try:
            text = tk.decode([i])
        except Exception:  # special or unused ids
            continue
        for k, kind in enumerate(kinds):
            if i not in have and kind.fullmatch(text):
                found[k].append(i)
                break
    out = []
    for ids in found:
        out += ids[:budget - len(out)]
    return out


def widen(model: NanoGptOss, extra: list[int]) -> NanoGptOss:
    """`model` with zero rows for the `extra` ids: the grammar of a tool call (a declared
    name, a schema's keys) can then always be followed, since a compact checkpoint's other
    ids have logit -inf; a zero row scores 0 and adds no direction to the input."""
    vocab = torch.unique(torch.cat([model.vocab_ids, torch.tensor(extra, dtype=torch.long)]))
    wide = NanoGptOss(model.cfg, vocab)
    with torch.no_grad():
        rows = wide.lookup[model.vocab_ids]
        for name in ("embed", "lm_head"):
            getattr(wide, name).zero_()
            getattr(wide, name)[rows] = getattr(model, name)
        own = dict(model.named_parameters())
        for name, param in wide.named_parameters():
            if name not in ("embed", "lm_head"):
                param.copy_(own[name])
    wide.set_fake_quant(model.layers[0].mlp.fake_quant)
    return wide.eval()


def main(argv: list[str] | None = None) -> int:
    """python -m agent.model.nano.export IN OUT --rows N: IN widened to N vocabulary rows."""
    import argparse
    import shutil

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--rows", type=int, required=True, help="vocabulary rows in all")
    args = p.parse_args(argv)
    model = load(args.source)
    extra = identifier_ids(set(model.vocab_ids.tolist()), args.rows - len(model.vocab_ids))
    save(widen(model, extra), args.out)
    for name in ("generation_config.json", "training.json"):
        if (Path(args.source) / name).exists():
            shutil.copy(Path(args.source) / name, Path(args.out) / name)
    print(f"{len(model.vocab_ids)} -> {len(model.vocab_ids) + len(extra)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
