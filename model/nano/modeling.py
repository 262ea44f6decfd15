"""The gpt-oss architecture as a trainable fp32 torch module, for the embedded nano model.

Built from the runtime's differentiable reference kernels (agent.kernels.reference), so it is
the same math as the runtime (and as transformers' GptOssForCausalLM): RMSNorm, attention with
per-head sinks, alternating sliding/full layers, YaRN RoPE (half-split rotation), top-k
routed experts with the clamped SwiGLU (alpha 1.702, limit 7, interleaved gate/up, +1 on the
linear half). Two training-only twists:

* the vocabulary is closed: the ids that occur in the data (`vocab_ids`, with the byte
  tokens; agent.harmony.closed_vocabulary spells every other id in them, as the runtime does
  for the exported model); the rows of all other ids stay zero in the exported model, so each of them has logit exactly 0 and their
  share of the softmax normalizer is the constant log(V - n), added as one extra logit;
* experts can be fake-quantized to MXFP4 (straight-through), so the exported MXFP4 model
  computes what was trained.

A batch shares one prefix (the system message): it is computed once and its keys/values
are broadcast to every sequence, which halves the cost of short transcripts.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from agent.kernels import reference as ref
from agent.harmony.closed_vocabulary import ClosedVocabulary
from agent.harmony.tokenizer import ENDOFTEXT, RETURN, VOCAB_SIZE
from agent.model.config import GptOssConfig
from agent.model.nano import mxfp4_fake


def nano_config(**sizes) -> GptOssConfig:
    """The runtime's config with the full o200k_harmony vocabulary and gpt-oss's constants
    (YaRN factor 32 over 4096, theta 150000, window 128, SwiGLU 1.702 / 7); `sizes`
    overrides the dimensions."""
    dims = dict(hidden_size=128, intermediate_size=128, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_local_experts=8,
                num_experts_per_tok=2)
    dims.update(sizes)
    return GptOssConfig(vocab_size=VOCAB_SIZE, eos_token_id=RETURN, pad_token_id=ENDOFTEXT,
                        **dims)


def local_rows(vocab_ids: torch.Tensor, vocab_size: int = VOCAB_SIZE) -> torch.Tensor:
    """full id -> its row in the closed vocabulary `vocab_ids` (-1 for ids outside it)"""
    lookup = torch.full((vocab_size,), -1, dtype=torch.long)
    lookup[vocab_ids] = torch.arange(len(vocab_ids))
    return lookup


class Attention(nn.Module):
    def __init__(self, cfg: GptOssConfig, window: int | None):
        super().__init__()
        self.cfg, self.window = cfg, window
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(h, cfg.num_attention_heads * d)
        self.k_proj = nn.Linear(h, cfg.num_key_value_heads * d)
        self.v_proj = nn.Linear(h, cfg.num_key_value_heads * d)
        self.o_proj = nn.Linear(cfg.num_attention_heads * d, h)
        self.sinks = nn.Parameter(torch.zeros(cfg.num_attention_heads))

    def _project(self, x):
        b, t, _ = x.shape
        cfg = self.cfg
        q = self.q_proj(x).view(b, t, cfg.num_attention_heads, cfg.head_dim)
        k = self.k_proj(x).view(b, t, cfg.num_key_value_heads, cfg.head_dim)
        v = self.v_proj(x).view(b, t, cfg.num_key_value_heads, cfg.head_dim)
        return q, k, v

    def forward(self, xp, xs, rope):
        """xp [1,P,H] shared prefix (P may be 0), xs [B,S,H]. Returns (yp, ys)."""
        cos, sin = rope  # [P+S, D/2]
        P, (B, S, _) = xp.shape[1], xs.shape
        window = self.window
        qp, kp, vp = self._project(xp)
        qs, ks, vs = self._project(xs)
        qp, kp = (ref.rope(t, cos[None, :P], sin[None, :P]) for t in (qp, kp))
        qs, ks = (ref.rope(t, cos[None, P:], sin[None, P:]) for t in (qs, ks))
        # every sequence sees the one shared prefix: broadcast its keys/values
        # (a sliding layer's suffix queries never see prefix keys older than the window)
        first = max(0, P - window + 1) if window else 0
        k_all = torch.cat([kp[:, first:].expand(B, -1, -1, -1), ks], dim=1)
        v_all = torch.cat([vp[:, first:].expand(B, -1, -1, -1), vs], dim=1)
        positions = torch.arange(P + S, device=xs.device)
        ys = ref.attention(qs, k_all, v_all, self.sinks, positions[None, P:].expand(B, -1),
                           k_offset=first, window=window)
        ys = self.o_proj(ys.reshape(B, S, -1))
        if P == 0:
            return xp, ys
        yp = ref.attention(qp, kp, vp, self.sinks, positions[None, :P], window=window)
        return self.o_proj(yp.reshape(1, P, -1)), ys


class Experts(nn.Module):
    """Router + experts. Weights are kept as [E, out, in] like the MXFP4 checkpoint rows."""

    def __init__(self, cfg: GptOssConfig):
        super().__init__()
        self.cfg = cfg
        e, h, i = cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size
        self.router = nn.Linear(h, e)
        self.gate_up_weight = nn.Parameter(torch.randn(e, 2 * i, h) * 0.02)
        self.gate_up_bias = nn.Parameter(torch.zeros(e, 2 * i))
        self.down_weight = nn.Parameter(torch.randn(e, h, i) * 0.02)
        self.down_bias = nn.Parameter(torch.zeros(e, h))
        self.fake_quant = False

    # the interface agent.kernels.reference.moe expects of an experts object
    def gate_up(self, e, dtype):
        return self._used[0][e]

    def down(self, e, dtype):
        return self._used[1][e]

    def forward(self, x):  # x [N, H]
        cfg = self.cfg
        quant = mxfp4_fake.fake_quantize if self.fake_quant else (lambda w: w)
        self._used = (quant(self.gate_up_weight), quant(self.down_weight))  # a tuple: not params
        if self.training:
            # Switch-style load balancing: fraction routed x mean probability, per expert
            probs = torch.softmax(self.router(x), dim=-1)
            chosen = torch.topk(probs, cfg.num_experts_per_tok, dim=-1).indices
            routed = torch.zeros_like(probs).scatter_(1, chosen, 1.0).mean(0)
            self.balance_loss = cfg.num_local_experts * (routed * probs.mean(0)).sum()
        return ref.moe(x, self.router.weight, self.router.bias, self, cfg.num_experts_per_tok,
                       cfg.swiglu_alpha, cfg.swiglu_limit)


class Block(nn.Module):
    def __init__(self, cfg: GptOssConfig, window: int | None):
        super().__init__()
        self.cfg = cfg
        self.input_norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.post_attention_norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.attn = Attention(cfg, window)
        self.mlp = Experts(cfg)

    def forward(self, xp, xs, rope):
        eps = self.cfg.rms_norm_eps
        yp, ys = self.attn(ref.rms_norm(xp, self.input_norm, eps),
                           ref.rms_norm(xs, self.input_norm, eps), rope)
        xp, xs = xp + yp, xs + ys
        P, (B, S, H) = xp.shape[1], xs.shape
        flat = torch.cat([xp.reshape(P, H), xs.reshape(B * S, H)])
        flat = flat + self.mlp(ref.rms_norm(flat, self.post_attention_norm, eps))
        return flat[:P].view(1, P, H), flat[P:].view(B, S, H)


class NanoGptOss(nn.Module):
    def __init__(self, cfg: GptOssConfig, vocab_ids: torch.Tensor, tie: bool = False):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("vocab_ids", vocab_ids.long(), persistent=True)
        n = len(vocab_ids)
        self.register_buffer("lookup", local_rows(self.vocab_ids, cfg.vocab_size),
                             persistent=False)
        self.vocabulary = ClosedVocabulary(self.vocab_ids.tolist())  # how text reaches it
        self.embed = nn.Parameter(torch.randn(n, cfg.hidden_size) * 0.02)
        self.layers = nn.ModuleList(Block(cfg, cfg.window(i)) for i in range(cfg.num_hidden_layers))
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        # tied (one tensor, exported twice) makes copying a token from the context easy to
        # learn: the embedding that came in is the direction that scores it going out
        self.lm_head = self.embed if tie else nn.Parameter(torch.randn(n, cfg.hidden_size) * 0.02)
        inv_freq, self.rope_scale = ref.yarn_frequencies(
            cfg.head_dim, cfg.rope_theta, cfg.rope_factor, cfg.rope_original_context,
            cfg.rope_beta_fast, cfg.rope_beta_slow, cfg.rope_truncate)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # the unseen ids' share of the normalizer: (V - n) * exp(0)
        self.unseen_logit = math.log(cfg.vocab_size - n)

    def set_fake_quant(self, on: bool) -> None:
        for layer in self.layers:
            layer.mlp.fake_quant = on

    def rope(self, length: int):
        return ref.rope_tables(torch.arange(length, device=self.inv_freq.device),
                               self.inv_freq, self.rope_scale)

    def forward(self, prefix: torch.Tensor, suffix: torch.Tensor) -> torch.Tensor:
        """prefix [P] and suffix [B,S] in *local* (reduced) ids -> hidden states [B,S,H]."""
        rope = self.rope(prefix.shape[0] + suffix.shape[1])
        xp, xs = self.embed[prefix][None], self.embed[suffix]
        for layer in self.layers:
            xp, xs = layer(xp, xs, rope)
        return ref.rms_norm(xs, self.norm, self.cfg.rms_norm_eps)

    def local_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the reduced vocabulary plus one last column for all unseen ids."""
        logits = hidden @ self.lm_head.t()
        extra = logits.new_full((*logits.shape[:-1], 1), self.unseen_logit)
        return torch.cat([logits, extra], dim=-1)

    @torch.no_grad()
    def full_logits(self, token_ids: list[int]) -> torch.Tensor:
        """float32 [T, vocab_size] exactly as the exported model computes them."""
        local = self.to_local(torch.tensor(token_ids))
        hidden = self.forward(local[:0], local[None])[0]
        full = hidden.new_zeros(hidden.shape[0], self.cfg.vocab_size)
        full[:, self.vocab_ids] = hidden @ self.lm_head.t()
        return full

    def to_local(self, ids: torch.Tensor) -> torch.Tensor:
        local = self.lookup[ids]
        if (local < 0).any():
            raise ValueError(f"token id {int(ids[local < 0][0])} is not in the nano vocabulary")
        return local
