"""agent.model.gguf (the side-by-side benchmark's GGUF) read back by the `gguf` package, whose
reader and dequantizers (llama.cpp's own Python) are the oracle: every tensor llama.cpp's
gpt-oss loader needs is there with the published types, and dequantizes to the checkpoint's
values (MXFP4 exactly, Q8_0 within half a step)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

gguf = pytest.importorskip("gguf")

from agent.kernels import reference  # noqa: E402
from agent.model.checkpoint import load_tensors  # noqa: E402
from agent.model.gguf import write_gguf  # noqa: E402

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    subprocess.run([sys.executable, "-m", "agent.model.random", "--config", "tiny", "--layers", "2",
                    "--out", str(folder)], check=True, capture_output=True, cwd=REPO)
    out = write_gguf(folder, folder.parent / "tiny.gguf")
    return load_tensors(folder), gguf.GGUFReader(str(out))


def test_tensors_names_and_types_are_what_the_gpt_oss_loader_reads(written):
    (config, _), reader = written
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    T = gguf.GGMLQuantizationType
    assert types["token_embd.weight"] == types["output.weight"] == T.Q8_0.name
    assert types["output_norm.weight"] == T.F32.name
    for i in range(config.num_hidden_layers):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            assert types[f"blk.{i}.{name}.weight"] == T.Q8_0.name
            assert types[f"blk.{i}.{name}.bias"] == T.F32.name
        for name in ("attn_norm.weight", "post_attention_norm.weight", "attn_sinks.weight",
                     "ffn_gate_inp.weight", "ffn_gate_inp.bias", "ffn_gate_exps.bias",
                     "ffn_up_exps.bias", "ffn_down_exps.bias"):
            assert types[f"blk.{i}.{name}"] == T.F32.name
        for name in ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"):
            assert types[f"blk.{i}.{name}.weight"] == T.MXFP4.name
    assert len(types) == 3 + 19 * config.num_hidden_layers  # nothing else
    fields = {f.name: f for f in reader.fields.values()}
    assert fields["general.architecture"].contents() == "gpt-oss"
    assert fields["gpt-oss.expert_count"].contents() == config.num_local_experts
    assert fields["gpt-oss.attention.sliding_window"].contents() == config.sliding_window
    assert fields["gpt-oss.vocab_size"].contents() == config.vocab_size


def test_values_dequantize_to_the_checkpoint(written):
    (config, tensors), reader = written
    by_name = {t.name: t for t in reader.tensors}

    def values(name):
        t = by_name[name]
        shape = tuple(int(d) for d in reversed(t.shape))  # GGUF lists dimensions innermost first
        return torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).copy()).double()

    e = "model.layers.1.mlp.experts."
    experts = reference.dequantize_mxfp4(tensors[e + "gate_up_proj_blocks"], tensors[e + "gate_up_proj_scales"],
                                         torch.float64)
    assert torch.equal(values("blk.1.ffn_gate_exps.weight"), experts[:, 0::2])
    assert torch.equal(values("blk.1.ffn_up_exps.weight"), experts[:, 1::2])
    down = reference.dequantize_mxfp4(tensors[e + "down_proj_blocks"], tensors[e + "down_proj_scales"], torch.float64)
    assert torch.equal(values("blk.1.ffn_down_exps.weight"), down)
    assert torch.equal(values("blk.1.ffn_gate_exps.bias"), tensors[e + "gate_up_proj_bias"][:, 0::2].double())
    assert torch.equal(values("blk.0.attn_sinks.weight"), tensors["model.layers.0.self_attn.sinks"].double())
    for ours, theirs in (("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"),
                         ("model.embed_tokens.weight", "token_embd.weight")):
        want = tensors[ours].double()
        step = want.view(want.shape[0], -1, 32).abs().amax(-1, keepdim=True) / 127
        error = (values(theirs) - want).view(step.shape[0], -1, 32).abs()
        # half a step, plus 127 steps times the fp16 rounding of the stored scale (2^-11)
        assert bool((error <= step * (0.5 + 127 * 2.0 ** -11) * 1.001).all())


def test_the_vocabulary_as_byte_level_bpe_encodes_as_tiktoken_does():
    """The GGUF's tokens and recovered merges, loaded into Hugging Face `tokenizers` (an
    independent BPE) with o200k's split pattern, give tiktoken's ids and decode back."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    from agent.harmony import tokenizer as tk
    from agent.model.gguf import byte_level_bpe
    tokens, merges = byte_level_bpe(tk.parse_ranks(tk.read_vocabulary_bytes()))
    assert len(tokens) == tk.O200K_RANKS and len(merges) == tk.O200K_RANKS - 256
    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                               merges=[tuple(m.split(" ")) for m in merges]))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tk.O200K_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    enc = tk.get_encoding()
    for text in ["Hello, world! What's the weather in Paris?", "  def f(x):\n\treturn x**2  # ok",
                 "数字 12345 und Ümläute — ‘quotes’ 🙂\r\n\n", "I'M DONE, they'll see\x00\x7f"]:
        ids = list(enc.encode(text))
        assert bpe.encode(text).ids == ids and bpe.decode(ids) == text
