"""A gpt-oss checkpoint -> one GGUF file for llama.cpp (the side-by-side benchmark's peer).

    python -m agent.model.gguf CHECKPOINT OUT.gguf

Types as in the published gpt-oss GGUFs: experts MXFP4 exactly as the checkpoint packs them
(only the nibble order changes), attention, embedding and unembedding Q8_0, norms, biases,
sinks and the router F32. Names and metadata are those llama.cpp's "gpt-oss" loader reads
(src/models/openai-moe.cpp): gate_up is split into ffn_gate_exps / ffn_up_exps (even / odd
rows). The vocabulary is o200k_harmony as llama.cpp's "gpt2" byte-level BPE (tokens in
GPT-2's byte-to-character spelling, merges recovered from the ranks, the Harmony special
tokens as control tokens), so llama-server can follow grammars and detokenize; llama-bench
only feeds random ids. Written with the `gguf` package (pip install gguf); tensors are converted one at a time, big matrices in row chunks, so memory stays at a
few hundred MB beyond the mapped checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_tensors
from .config import GptOssConfig

Q8_CHUNK_ROWS = 16384  # rows quantized at once (2880 floats each: ~190 MB of float32)


def ggml_mxfp4(blocks: torch.Tensor, scales: torch.Tensor) -> np.ndarray:
    """HF MXFP4 (blocks [..., KB, 16]: byte j holds element 2j low, 2j+1 high; scales [..., KB])
    -> ggml block_mxfp4 bytes [..., KB * 17]: the e8m0 byte, then byte j = element j (low
    nibble) and element j + 16 (high nibble)."""
    b = blocks.numpy()
    codes = np.empty(b.shape[:-1] + (32,), dtype=np.uint8)
    codes[..., 0::2] = b & 0x0F
    codes[..., 1::2] = b >> 4
    qs = codes[..., :16] | (codes[..., 16:] << 4)
    out = np.concatenate([scales.numpy()[..., None], qs], axis=-1)
    return out.reshape(out.shape[:-2] + (-1,))


def q8_0(weight: torch.Tensor) -> np.ndarray:
    """A float matrix [N, K] -> Q8_0 bytes, a chunk of rows at a time."""
    from gguf import GGMLQuantizationType, quants

    parts = [quants.quantize(weight[i:i + Q8_CHUNK_ROWS].float().numpy(), GGMLQuantizationType.Q8_0)
             for i in range(0, weight.shape[0], Q8_CHUNK_ROWS)]
    return np.concatenate(parts)


def write_gguf(checkpoint: Path, out: Path) -> Path:
    """Writes `checkpoint` (any layout agent.model loads with MXFP4 experts) to `out`."""
    import gguf

    config, tensors = load_tensors(Path(checkpoint))
    if "model.layers.0.mlp.experts.gate_up_proj_blocks" not in tensors:
        raise ValueError(f"{checkpoint}: experts are not MXFP4; the GGUF keeps them as packed")
    if "model.vocab_ids" in tensors:
        raise ValueError(f"{checkpoint}: a compact vocabulary has no GGUF equivalent here")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(out.suffix + ".partial")
    writer = gguf.GGUFWriter(str(partial), "gpt-oss")
    _metadata(writer, config)
    Q8, F32, MX = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.MXFP4

    def f32(name: str, t: torch.Tensor) -> None:
        writer.add_tensor(name, t.float().contiguous().numpy())

    def q8(name: str, t: torch.Tensor) -> None:
        writer.add_tensor(name, q8_0(t), raw_dtype=Q8)

    def mx(name: str, blocks: torch.Tensor, scales: torch.Tensor) -> None:
        writer.add_tensor(name, ggml_mxfp4(blocks.contiguous(), scales.contiguous()), raw_dtype=MX)

    q8("token_embd.weight", tensors["model.embed_tokens.weight"])
    f32("output_norm.weight", tensors["model.norm.weight"])
    q8("output.weight", tensors["lm_head.weight"])
    for i in range(config.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        f32(b + "attn_norm.weight", tensors[p + "input_layernorm.weight"])
        f32(b + "post_attention_norm.weight", tensors[p + "post_attention_layernorm.weight"])
        for ours, theirs in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"),
                             ("o_proj", "attn_output")):
            q8(b + theirs + ".weight", tensors[p + f"self_attn.{ours}.weight"])
            f32(b + theirs + ".bias", tensors[p + f"self_attn.{ours}.bias"])
        f32(b + "attn_sinks.weight", tensors[p + "self_attn.sinks"])
        f32(b + "ffn_gate_inp.weight", tensors[p + "mlp.router.weight"])
        f32(b + "ffn_gate_inp.bias", tensors[p + "mlp.router.bias"])
        e = p + "mlp.experts."
        blocks, scales = tensors[e + "gate_up_proj_blocks"], tensors[e + "gate_up_proj_scales"]
        bias = tensors[e + "gate_up_proj_bias"]
        mx(b + "ffn_gate_exps.weight", blocks[:, 0::2], scales[:, 0::2])
        mx(b + "ffn_up_exps.weight", blocks[:, 1::2], scales[:, 1::2])
        f32(b + "ffn_gate_exps.bias", bias[:, 0::2])
        f32(b + "ffn_up_exps.bias", bias[:, 1::2])
        mx(b + "ffn_down_exps.weight", tensors[e + "down_proj_blocks"], tensors[e + "down_proj_scales"])
        f32(b + "ffn_down_exps.bias", tensors[e + "down_proj_bias"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)
    return out


def _metadata(writer, c: GptOssConfig) -> None:
    import gguf

    writer.add_name("gpt-oss (random weights, agent.bench)")
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_key_length(c.head_dim)
    writer.add_value_length(c.head_dim)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_expert_count(c.num_local_experts)
    writer.add_expert_used_count(c.num_experts_per_tok)
    writer.add_expert_feed_forward_length(c.intermediate_size)
    writer.add_sliding_window(c.sliding_window)
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(c.rope_factor)
    writer.add_rope_scaling_orig_ctx_len(c.rope_original_context)
    _vocabulary(writer, c.vocab_size)
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)


def _vocabulary(writer, vocab_size: int) -> None:
    import gguf

    from agent.harmony import tokenizer as tk
    if vocab_size < tk.VOCAB_SIZE:      # a test model's short vocabulary: ids only
        writer.add_tokenizer_model("none")
        return
    tokens, merges = byte_level_bpe(tk.parse_ranks(tk.read_vocabulary_bytes()))
    named = {i: name for name, i in tk.NAMED_SPECIAL_TOKENS.items()}
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for i in range(len(tokens), vocab_size):   # the special range, named or reserved
        tokens.append(named.get(i, f"<|reserved_{i}|>"))
        types.append(gguf.TokenType.CONTROL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-4o")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tk.STARTOFTEXT)
    writer.add_eos_token_id(tk.RETURN)
    writer.add_pad_token_id(tk.ENDOFTEXT)
    writer.add_add_bos_token(False)


def byte_level_bpe(ranks: dict[bytes, int]) -> tuple[list[str], list[str]]:
    """tiktoken ranks -> (tokens, merges) in the spelling of GPT-2-style tokenizer files:
    every byte as one printable character, a merge as "left right". A token's merge is the
    last step of byte-pair encoding its own bytes with the merges ranked below it."""
    char = _byte_characters()
    spell = lambda piece: "".join(char[b] for b in piece)  # noqa: E731
    by_rank = sorted(ranks, key=ranks.__getitem__)
    merges = []
    for piece in by_rank:
        if len(piece) < 2:
            continue
        rank, parts = ranks[piece], [bytes([b]) for b in piece]
        while len(parts) > 2:
            pairs = [(ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            best, i = min(pairs)
            if best >= rank:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {rank} ({piece!r}) is not one merge of lower-ranked tokens")
        merges.append(f"{spell(parts[0])} {spell(parts[1])}")
    return [spell(piece) for piece in by_rank], merges


def _byte_characters() -> list[str]:
    """GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the
    others (controls, space, 0x7f-0xa0, 0xad) take the characters from U+0100 on, in order."""
    printable = [*range(0x21, 0x7f), *range(0xa1, 0xad), *range(0xae, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b], extra = chr(0x100 + extra), extra + 1
    return [table[b] for b in range(256)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.model.gguf", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    print(write_gguf(args.checkpoint, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
