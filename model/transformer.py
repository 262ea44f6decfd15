"""The gpt-oss architecture, top to bottom.

    tokens -> embedding
    for each of num_hidden_layers blocks:
        x = x + attention(rms_norm(x))      qkv with biases; YaRN RoPE; GQA; a learned sink per
                                            head; sliding window on layer_types "sliding_attention"
        x = x + moe(rms_norm(x))            router top-k, softmax over the chosen logits; clamped
                                            SwiGLU experts (MXFP4 weights, biases)
    logits = unembedding(rms_norm(x))       untied from the embedding

The heavy operations go through `agent.kernels`, which picks an implementation per device.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from agent import kernels
from agent.harmony.closed_vocabulary import ClosedVocabulary
from agent.kernels import DenseExperts, Int8Weight, PackedExperts

from .cache import KVCache
from .checkpoint import CheckpointError, load_tensors
from .config import ConfigError, GptOssConfig, sampling_defaults
from .weights import WeightPlacement
from .download import MODELS, find_checkpoint, repo_id

DENSE_AUTO_BYTES = 256 << 20  # dense=None: dequantize experts up front if they fit in this
BF16_AUTO_PARAMS = 1e9        # dtype=None on CPU: bf16 above this many parameters, else fp32
# Below this many parameters a CPU forward pass runs on one thread: its ops are too small to
# split, and on a busy machine the threads' barriers cost far more than the work (100x seen).
ONE_THREAD_PARAMS = 50e6
DENSE_MODES = (None, "bf16", "fp32", "int8", "int8-unembedding")
LOOKAHEAD = 8  # drafted tokens checked per pass when decoding greedily (model/lookup.py)
PREFILL_CHUNK = 512  # tokens per prefill step: see GptOss._chunk and BENCHMARKS.md


Matrix = torch.Tensor | Int8Weight  # a dense weight [out, in], see GptOss._matrix


@dataclass
class Layer:
    attn_norm: torch.Tensor
    qkv_weight: Matrix   # q, k and v projections stacked: one pass over x per token
    qkv_bias: torch.Tensor
    o_weight: Matrix
    o_bias: torch.Tensor
    sinks: torch.Tensor
    mlp_norm: torch.Tensor
    router_weight: torch.Tensor
    router_bias: torch.Tensor
    experts: PackedExperts | DenseExperts
    window: int | None


class GptOss:
    """A loaded gpt-oss model: `logits`, `generate`, `generate_batch` (see agent.model).

    `generate` works on the session cache (prefix reuse), so consume one stream at a time:
    starting another makes the older one raise at its next step. Not thread-safe: serialize
    calls (the server's engine does). `logits` and the batch calls use caches of their own.
    """

    def __init__(self, config: GptOssConfig, tensors: dict[str, torch.Tensor],
                 device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 dense: str | None = None, experts: str | None = None):
        if dense not in DENSE_MODES:
            raise ValueError(f"dense must be one of {DENSE_MODES}, got {dense!r}")
        if experts not in (None, "packed", "dense"):
            raise ValueError(f"experts must be None, 'packed' or 'dense', got {experts!r}")
        self.config = config
        self.sampling_defaults: dict = {}  # the checkpoint's recommended sampling (see load)
        self.device = torch.device(device)
        self.dtype = dtype or _default_dtype(config, self.device)
        self.int8 = dense == "int8"
        self.dense_experts = (experts == "dense" if experts is not None
                              else _experts_fit(config, self.dtype))
        small = _parameters(config, embeddings=False) < ONE_THREAD_PARAMS
        self.threads = 1 if small and self.device.type == "cpu" else None  # None: torch's
        self.inv_freq, self.concentration = kernels.yarn_frequencies(
            config.head_dim, config.rope_theta, config.rope_factor, config.rope_original_context,
            config.rope_beta_fast, config.rope_beta_slow, config.rope_truncate)
        self.inv_freq = self.inv_freq.to(self.device)
        # a big model on the CPU streams its weights every token: keep them in huge pages
        place = WeightPlacement(tensors, self.device, self.dtype, self._matrix,
                                huge_pages=self.device.type == "cpu" and not small,
                                pack_experts=not self.dense_experts)
        self.embed, self.vocab_ids, self.row_of = place.embedding(config.vocab_size)
        # a compact checkpoint reads and writes only its own ids: prompts are spelled in them
        self.vocabulary = (None if self.vocab_ids is None
                           else ClosedVocabulary(self.vocab_ids.tolist()))
        self.norm = place.exact("model.norm.weight")
        # as the dense matrices are kept, or alone in 8 bits with dense="int8-unembedding"
        self.unembed = (place.take("lm_head.weight", self.dtype, _int8) if dense == "int8-unembedding"
                        else place.matrix("lm_head.weight"))
        self.layers = [self._layer(i, place) for i in range(config.num_hidden_layers)]
        self.cache = KVCache(config, 1, self.dtype, self.device)  # the session's, for prefix reuse
        self.stream_owner = None  # the generate() stream allowed to extend self.cache
        self.lookahead = LOOKAHEAD  # greedy decoding checks drafts from the context (lookup.py)
        self.last_usage = {"prompt_tokens": 0, "reused_tokens": 0, "computed_tokens": 0,
                           "generated_tokens": 0}

    def _layer(self, i: int, place: WeightPlacement) -> Layer:
        p = f"model.layers.{i}."
        e = p + "mlp.experts."
        packed = PackedExperts(
            place.packed(e + "gate_up_proj_blocks"), place.packed(e + "gate_up_proj_scales"),
            place.weight(e + "gate_up_proj_bias"), place.packed(e + "down_proj_blocks"),
            place.packed(e + "down_proj_scales"), place.weight(e + "down_proj_bias"))
        experts = packed if not self.dense_experts else DenseExperts(
            torch.stack([packed.gate_up(j, self.dtype) for j in range(packed.num_experts)]),
            packed.gate_up_bias,
            torch.stack([packed.down(j, self.dtype) for j in range(packed.num_experts)]),
            packed.down_bias)
        a = p + "self_attn."
        qkv = tuple(f"{a}{name}_proj." for name in "qkv")
        return Layer(
            place.exact(p + "input_layernorm.weight"),
            place.matrix(tuple(n + "weight" for n in qkv)), place.weight(tuple(n + "bias" for n in qkv)),
            place.matrix(a + "o_proj.weight"), place.weight(a + "o_proj.bias"), place.exact(a + "sinks"),
            place.exact(p + "post_attention_layernorm.weight"),
            place.weight(p + "mlp.router.weight"), place.weight(p + "mlp.router.bias"), experts,
            self.config.window(i))

    def _matrix(self, w: torch.Tensor):
        """A dense weight as the model keeps it: as loaded, or 8-bit with dense="int8"."""
        return _int8(w) if self.int8 else w

    # ---- the forward pass ----------------------------------------------------------------
    def forward(self, rows: Sequence[Sequence[int]], cache: KVCache) -> torch.Tensor:
        """Append each row's tokens to its cache row; returns the final-normed hidden states
        [B, T, H] (rows shorter than T are right-padded; their padding outputs are junk)."""
        starts = [cache.length(b) for b in range(len(rows))]
        width = max(len(r) for r in rows)
        cache.reserve(max(s + width for s in starts))
        tokens = torch.zeros(len(rows), width, dtype=torch.long)
        for b, row in enumerate(rows):
            tokens[b, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        tokens = tokens.to(self.device)
        offsets = torch.tensor(starts, device=self.device)[:, None]
        outputs = []
        step = self._chunk(len(rows), max(starts) + width)
        with _torch_threads(self.threads):
            for begin in range(0, width, step):
                positions = offsets + torch.arange(begin, min(width, begin + step),
                                                   device=self.device)
                outputs.append(self._run(tokens[:, begin:begin + step], positions, cache))
        for b, row in enumerate(rows):
            cache.tokens[b].extend(int(t) for t in row)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)

    def _chunk(self, batch: int, keys: int) -> int:
        """Tokens per forward step of a prefill. The fused attention kernels (CPU, Triton)
        hold no score matrix, so every step takes PREFILL_CHUNK tokens whatever the context,
        and the MoE and dense matrices keep their fast path; the reference attention holds
        batch x heads x chunk x keys floats, bounded to ~256 MiB."""
        if kernels.implementation("attention", self.device.type) is not kernels.reference.attention:
            return PREFILL_CHUNK
        budget = (64 << 20) // max(1, batch * self.config.num_attention_heads * keys)
        return max(16, min(PREFILL_CHUNK, budget))

    def _run(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        x = self.embed[tokens if self.row_of is None else self.row_of[tokens]]
        cos, sin = kernels.rope_tables(positions, self.inv_freq, self.concentration)
        for i, layer in enumerate(self.layers):
            x = x + self._attention(i, layer, x, positions, cos, sin, cache)
            x = x + self._mlp(layer, x)
        return kernels.rms_norm(x, self.norm, self.config.rms_norm_eps)

    def _attention(self, i, layer: Layer, x, positions, cos, sin, cache: KVCache):
        c = self.config
        B, T, _ = x.shape
        h = kernels.rms_norm(x, layer.attn_norm, c.rms_norm_eps)
        q, k, v = kernels.linear(h, layer.qkv_weight, layer.qkv_bias).split(
            [c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim,
             c.num_key_value_heads * c.head_dim], dim=-1)
        q = q.view(B, T, c.num_attention_heads, c.head_dim)
        k = k.view(B, T, c.num_key_value_heads, c.head_dim)
        v = v.view(B, T, c.num_key_value_heads, c.head_dim)
        q, k = kernels.rope(q, cos, sin), kernels.rope(k, cos, sin)
        if cache.packed:
            keys, values, length = cache.store_packed(i, positions, k, v)
            a = kernels.attention_packed(q, keys, values, layer.sinks, positions, length,
                                         layer.window, c.head_dim ** -0.5)
        else:
            keys, values, offset = cache.store(i, positions, k, v, layer.window)
            a = kernels.attention(q, keys, values, layer.sinks, positions, offset, layer.window,
                                  c.head_dim ** -0.5)
        return kernels.linear(a.reshape(B, T, -1), layer.o_weight, layer.o_bias)

    def _mlp(self, layer: Layer, x):
        c = self.config
        h = kernels.rms_norm(x, layer.mlp_norm, c.rms_norm_eps)
        y = kernels.moe(h.reshape(-1, c.hidden_size), layer.router_weight, layer.router_bias,
                        layer.experts, c.num_experts_per_tok, c.swiglu_alpha, c.swiglu_limit)
        return y.view_as(x)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final hidden states -> float32 logits (-inf for tokens a compact checkpoint lacks)."""
        logits = kernels.linear(hidden, self.unembed).float()
        if self.vocab_ids is None:
            return logits
        full = logits.new_full((*logits.shape[:-1], self.config.vocab_size), float("-inf"))
        full[..., self.vocab_ids] = logits
        return full

    # ---- public API ----------------------------------------------------------------------
    def spell(self, token_ids: Sequence[int]) -> list[int]:
        """The tokens this model reads for `token_ids`: the same ids, except that a compact
        checkpoint spells the ids it lacks in ones it has (agent.harmony.closed_vocabulary).
        generate and the batch calls do this to every prompt; `logits` takes ids as given."""
        tokens = [int(t) for t in token_ids]
        return tokens if self.vocabulary is None else self.vocabulary.spell(tokens)

    @torch.inference_mode()
    def logits(self, token_ids: Sequence[int]) -> torch.Tensor:
        """float32 [len(token_ids), vocab] for a fresh sequence (the session cache is untouched)."""
        if len(token_ids) == 0:
            raise ValueError("logits: token_ids is empty")
        cache = KVCache(self.config, 1, self.dtype, self.device)
        return self.project(self.forward([list(token_ids)], cache)[0]).cpu()

    def generate(self, prompt_tokens: Sequence[int], max_tokens: int = 256,
                 stop_tokens: Sequence[int] = (), temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int | None = None, logprobs: bool = False,
                 constraint=None, lookahead: int | None = None, *, drafter=None) -> Iterator:
        """Stream Generated(token, logprob) for one prompt, reusing the cached prefix;
        `constraint` restricts the tokens, `lookahead` drafts from the context (see
        agent.model.generate; default `self.lookahead`)."""
        from .generate import generate
        return generate(self, prompt_tokens, max_tokens, stop_tokens, temperature, top_p, top_k,
                        seed, logprobs, constraint, lookahead, drafter=drafter)

    def generate_batch(self, prompts: Sequence[Sequence[int]],
                       max_tokens: int | Sequence[int] = 256, stop_tokens: Sequence[int] = (),
                       temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                       seed: int | None = None, logprobs: bool = False) -> list[list]:
        """Several prompts in one batch -> one list of Generated per prompt."""
        from .generate import generate_batch
        return generate_batch(self, prompts, max_tokens, stop_tokens, temperature, top_p, top_k,
                              seed, logprobs)

    def stream_batch(self, prompts: Sequence[Sequence[int]],
                     max_tokens: int | Sequence[int] = 256, stop_tokens: Sequence[int] = (),
                     temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                     seed: int | None = None, logprobs: bool = False,
                     constraints: Sequence | None = None) -> Iterator[tuple]:
        """Like generate_batch, streaming (row index, Generated) as each step samples;
        `constraints`: one grammar (or None) per row."""
        from .generate import stream_batch
        return stream_batch(self, prompts, max_tokens, stop_tokens, temperature, top_p, top_k,
                            seed, logprobs, constraints)

    def reset(self) -> None:
        """Forget the session cache (frees its memory)."""
        self.cache = KVCache(self.config, 1, self.dtype, self.device)


def _int8(w: torch.Tensor):
    """w in 8 bits with a scale per 32 weights of a row, where its width allows."""
    return Int8Weight.quantize(w) if w.shape[-1] % 32 == 0 else w


@contextmanager
def _torch_threads(count: int | None):
    saved = torch.get_num_threads()
    if count is None or count == saved:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _parameters(config: GptOssConfig, embeddings: bool = True) -> int:
    """Roughly: experts plus embedding and unembedding (attention is small next to them)."""
    c = config
    per_layer = c.num_local_experts * 3 * c.hidden_size * c.intermediate_size
    return c.num_hidden_layers * per_layer + 2 * c.vocab_size * c.hidden_size * embeddings


def _default_dtype(config: GptOssConfig, device: torch.device) -> torch.dtype:
    if device.type != "cpu":
        return torch.bfloat16
    return torch.bfloat16 if _parameters(config) > BF16_AUTO_PARAMS else torch.float32


def _experts_fit(config: GptOssConfig, dtype: torch.dtype) -> bool:
    c = config
    values = c.num_hidden_layers * c.num_local_experts * 3 * c.hidden_size * c.intermediate_size
    return values * torch.finfo(dtype).bits // 8 <= DENSE_AUTO_BYTES


def load(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         dense: str | None = None, experts: str | None = None) -> GptOss:
    """Load a checkpoint folder (HF, original, compact), "nano" (the embedded model) or
    "gpt-oss-20b" / "openai/gpt-oss-120b" (its snapshot in the Hugging Face cache, which
    `python -m agent download` fills).

    dtype None: bf16 on CUDA; on CPU bf16 for big models, float32 for small ones.
    dense: None (or "bf16"/"fp32": no change) keeps attention, embedding and unembedding
        weights as loaded; "int8" stores them in 8 bits with a float16 scale per 32 weights of
        a row (the bytes of llama.cpp's Q8_0: less to read per decoded token; see
        agent.kernels.Int8Weight); "int8-unembedding" the unembedding only (a quarter of a
        20b token's bytes in bf16; its logits off by ~0.8% rms, BENCHMARKS.md). None reads
        $GPT_OSS_AGENT_DENSE, so every entry point (the command line, the server, Agent) can
        be switched without a flag of its own.
    experts: None = "packed" (MXFP4, the normal case) unless, dequantized, they fit in
        256 MiB (tiny models); "dense" dequantizes them all up front.
    """
    if str(path) == "nano":
        from . import nano  # the embedded model's package; imported only when asked for
        path = nano.path()
    elif repo_id(str(path)) in MODELS.values() and not Path(path).exists():
        name, path = str(path), find_checkpoint(str(path))  # the HF cache, or the old folder
        if path is None:
            raise CheckpointError(f"{name}: no such checkpoint folder (run `python -m agent "
                                  f"download {name}` or pass the checkpoint's folder)")
    if dense is None and (dense := os.environ.get("GPT_OSS_AGENT_DENSE") or None) not in DENSE_MODES:
        raise ValueError(f"GPT_OSS_AGENT_DENSE={dense}: must be one of "
                         f"{', '.join(m for m in DENSE_MODES if m)} (or unset)")
    config, tensors = load_tensors(Path(path))
    model = GptOss(config, tensors, device, dtype, dense, experts)
    try:
        model.sampling_defaults = sampling_defaults(Path(path))
    except ConfigError as exc:  # one CheckpointError for every file of the folder
        raise CheckpointError(str(exc)) from None
    return model
