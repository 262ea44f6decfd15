"""Random gpt-oss checkpoints with the real names, shapes and MXFP4 layout.

    python -m agent.model.random --config 20b|120b|tiny --layers N --out DIR
                                 [--layout hf|original] [--experts mxfp4|float] [--seed S]

Values are scaled like a trained model's (weights ~ 1/sqrt(fan_in), random FP4 codes under a
per-block scale of the same size), so activations stay finite through many layers. Tensors are
generated and written one layer at a time (shards of about 2 GB), so a 20b-shaped checkpoint
needs little memory. `--experts float` writes experts as transformers saves them after
dequantizing (`gate_up_proj` [E, H, 2I], `down_proj` [E, I, H], bf16).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from . import mxfp4
from .checkpoint import original_names
from .config import GptOssConfig, preset

FP4_RMS = math.sqrt(sum(v * v for v in mxfp4.FP4_VALUES) / 16)  # rms of a uniform random code


def _normal(shape, std, gen, dtype=torch.bfloat16, mean=0.0):
    out = torch.empty(shape, dtype=dtype)
    flat = out.view(-1, shape[-1]) if len(shape) > 1 else out.view(1, -1)
    for start in range(0, flat.shape[0], 8192):  # chunks: no float32 copy of a big matrix
        rows = flat[start:start + 8192]
        rows.copy_(torch.randn(rows.shape, generator=gen) * std + mean)
    return out


def _packed(shape_blocks, fan_in, gen):
    blocks = torch.randint(0, 256, shape_blocks, dtype=torch.uint8, generator=gen)
    exponent = round(math.log2(1.0 / (math.sqrt(fan_in) * FP4_RMS)))
    jitter = torch.randint(-1, 2, shape_blocks[:-1], generator=gen)
    scales = (exponent + mxfp4.SCALE_BIAS + jitter).to(torch.uint8)
    return blocks, scales


def random_layer(config: GptOssConfig, layer: int, gen: torch.Generator) -> dict:
    """Canonical tensors of one decoder layer."""
    c, p = config, f"model.layers.{layer}."
    H, E, I = c.hidden_size, c.num_local_experts, c.intermediate_size
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    t = {
        p + "input_layernorm.weight": _normal((H,), 0.1, gen, mean=1.0),
        p + "post_attention_layernorm.weight": _normal((H,), 0.1, gen, mean=1.0),
        p + "self_attn.q_proj.weight": _normal((q, H), H ** -0.5, gen),
        p + "self_attn.q_proj.bias": _normal((q,), 0.1, gen),
        p + "self_attn.k_proj.weight": _normal((kv, H), H ** -0.5, gen),
        p + "self_attn.k_proj.bias": _normal((kv,), 0.1, gen),
        p + "self_attn.v_proj.weight": _normal((kv, H), H ** -0.5, gen),
        p + "self_attn.v_proj.bias": _normal((kv,), 0.1, gen),
        p + "self_attn.o_proj.weight": _normal((H, q), 0.5 * q ** -0.5, gen),
        p + "self_attn.o_proj.bias": _normal((H,), 0.05, gen),
        p + "self_attn.sinks": _normal((c.num_attention_heads,), 1.0, gen),
        p + "mlp.router.weight": _normal((E, H), H ** -0.5, gen),
        p + "mlp.router.bias": _normal((E,), 0.1, gen),
        p + "mlp.experts.gate_up_proj_bias": _normal((E, 2 * I), 0.05, gen),
        p + "mlp.experts.down_proj_bias": _normal((E, H), 0.05, gen),
    }
    t[p + "mlp.experts.gate_up_proj_blocks"], t[p + "mlp.experts.gate_up_proj_scales"] = \
        _packed((E, 2 * I, H // 32, 16), H, gen)
    t[p + "mlp.experts.down_proj_blocks"], t[p + "mlp.experts.down_proj_scales"] = \
        _packed((E, H, I // 32, 16), I, gen)
    return t


def random_tensors(config: GptOssConfig, seed: int = 0):
    """Yields groups of canonical tensors: embeddings and final norm, then one per layer."""
    gen = torch.Generator().manual_seed(seed)
    V, H = config.vocab_size, config.hidden_size
    yield {"model.embed_tokens.weight": _normal((V, H), 1.0, gen),
           "model.norm.weight": _normal((H,), 0.1, gen, mean=1.0),
           "lm_head.weight": _normal((V, H), H ** -0.5, gen)}
    for layer in range(config.num_hidden_layers):
        yield random_layer(config, layer, gen)


def float_experts(group: dict) -> dict:
    """Replace packed experts by the bf16 tensors transformers writes after dequantizing."""
    out = {}
    for name, tensor in group.items():
        if name.endswith("_scales"):
            continue
        if name.endswith("_blocks"):
            base = name[: -len("_blocks")]
            dense = mxfp4.dequantize(tensor, group[base + "_scales"], torch.bfloat16)
            out[base] = dense.transpose(1, 2).contiguous()  # [E, in, out]
        else:
            out[name] = tensor
    return out


def to_original(group: dict, config: GptOssConfig) -> dict:
    """Canonical names -> original names (q, k, v fused into qkv)."""
    out, fused = {}, {}
    sources = original_names(config)
    for name, tensor in group.items():
        source, rows = sources[name]
        if rows is None:
            out[source] = tensor
        else:
            fused.setdefault(source, []).append((rows.start, tensor))
    for source, parts in fused.items():
        out[source] = torch.cat([t for _, t in sorted(parts, key=lambda part: part[0])])
    return out


def write_checkpoint(out: Path, config: GptOssConfig, groups, layout: str = "hf",
                     shard_bytes: int = 2 << 30) -> Path:
    """Write tensor groups as safetensors shards plus config (and index when sharded)."""
    out = Path(out)
    folder = out / "original" if layout == "original" else out
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = [{}]
    written: list[tuple[Path, list[str]]] = []

    def flush():
        if shards[-1]:
            path = folder / f"part-{len(written):05d}.safetensors"
            save_file({k: v.contiguous() for k, v in shards[-1].items()}, str(path),
                      metadata={"format": "pt"})
            written.append((path, list(shards[-1])))
            shards[-1] = {}

    size = 0
    for group in groups:
        shards[-1].update(group)
        size += sum(t.numel() * t.element_size() for t in group.values())
        if size >= shard_bytes:
            flush()
            size = 0
    flush()
    weight_map = {}
    for i, (path, names) in enumerate(written):
        final = "model.safetensors" if len(written) == 1 else \
            f"model-{i + 1:05d}-of-{len(written):05d}.safetensors"
        path.rename(folder / final)
        weight_map.update({name: final for name in names})
    if len(written) > 1 and layout == "hf":
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    return folder


def write_random(out: Path, config: GptOssConfig, layout: str = "hf", experts: str = "mxfp4",
                 seed: int = 0, shard_bytes: int = 2 << 30) -> Path:
    groups = random_tensors(config, seed)
    if experts == "float":
        groups = (float_experts(g) for g in groups)
    if layout == "original":
        groups = (to_original(g, config) for g in groups)
    folder = write_checkpoint(out, config, groups, layout, shard_bytes)
    data = config.to_original() if layout == "original" else config.to_hf(experts == "mxfp4")
    (folder / "config.json").write_text(json.dumps(data, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.model.random", description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=["20b", "120b", "tiny"], default="tiny")
    parser.add_argument("--layers", type=int, default=None, help="number of layers (default: the preset's)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--layout", choices=["hf", "original"], default="hf")
    parser.add_argument("--experts", choices=["mxfp4", "float"], default="mxfp4")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.layout == "original" and args.experts == "float":
        parser.error("the original layout stores experts as MXFP4 only")
    config = preset(args.config, num_hidden_layers=args.layers)
    folder = write_random(args.out, config, args.layout, args.experts, args.seed)
    total = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    print(f"wrote {args.config} ({config.num_hidden_layers} layers, {args.layout} layout) to "
          f"{folder}: {total / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
