"""The gpt-oss architecture as a trainable fp32 torch module, for the embedded nano model.

Same math as the runtime (and as transformers' GptOssForCausalLM): RMSNorm, attention with
per-head sinks, alternating sliding/full layers, YaRN RoPE (half-split rotation), top-k
routed experts with the clamped SwiGLU (alpha 1.702, limit 7, interleaved gate/up, +1 on the
linear half). Two training-only twists:

* the vocabulary is reduced to the ids that occur in the data (`vocab_ids`); the rows of all
  other ids stay zero in the exported model, so each of them has logit exactly 0 and their
  share of the softmax normalizer is the constant log(V - n), added as one extra logit;
* experts can be fake-quantized to MXFP4 (straight-through), so the exported MXFP4 model
  computes what was trained.

A batch shares one prefix (the system message): it is computed once and its keys/values
are broadcast to every sequence, which halves the cost of short transcripts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agent.model.nano import mxfp4_fake


@dataclass
class NanoConfig:
    hidden_size: int = 128
    intermediate_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    num_local_experts: int = 8
    num_experts_per_tok: int = 2
    sliding_window: int = 128
    rope_theta: float = 150000.0
    rope_factor: float = 32.0
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    rope_original_max_position: int = 4096
    max_position_embeddings: int = 131072
    rms_norm_eps: float = 1e-5
    swiglu_alpha: float = 1.702
    swiglu_limit: float = 7.0
    vocab_size: int = 201088

    def layer_types(self) -> list[str]:
        return ["sliding_attention" if i % 2 == 0 else "full_attention"
                for i in range(self.num_hidden_layers)]

    def to_hf(self) -> dict:
        """config.json in the Hugging Face gpt-oss layout."""
        return {
            "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
            "hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads, "head_dim": self.head_dim,
            "num_local_experts": self.num_local_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "experts_per_token": self.num_experts_per_tok,
            "sliding_window": self.sliding_window, "layer_types": self.layer_types(),
            "rope_theta": self.rope_theta,
            "rope_scaling": {"rope_type": "yarn", "factor": self.rope_factor,
                             "beta_fast": self.rope_beta_fast, "beta_slow": self.rope_beta_slow,
                             "original_max_position_embeddings": self.rope_original_max_position,
                             "truncate": False},
            "max_position_embeddings": self.max_position_embeddings,
            "initial_context_length": self.rope_original_max_position,
            "rms_norm_eps": self.rms_norm_eps, "swiglu_limit": self.swiglu_limit,
            "attention_bias": True, "attention_dropout": 0.0, "hidden_act": "silu",
            "tie_word_embeddings": False, "vocab_size": self.vocab_size,
            "eos_token_id": 200002, "pad_token_id": 199999, "bos_token_id": 199998,
            "router_aux_loss_coef": 0.9, "output_router_logits": False, "use_cache": True,
            "torch_dtype": "float32",
            "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
                "model.layers.*.self_attn", "model.layers.*.mlp.router",
                "model.embed_tokens", "lm_head"]},
        }


def yarn_inv_freq(cfg: NanoConfig) -> tuple[torch.Tensor, float]:
    """YaRN frequencies (no truncation, as gpt-oss) and the attention (cos/sin) scale."""
    dim, base = cfg.head_dim, cfg.rope_theta
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (cfg.rope_factor * pos_freqs)

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(cfg.rope_original_max_position / (rotations * 2 * math.pi))) / (
            2 * math.log(base))

    low = max(correction_dim(cfg.rope_beta_fast), 0)
    high = min(correction_dim(cfg.rope_beta_slow), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1 = keep the original (extrapolated) frequency
    inv_freq = interpolation * (1 - keep) + extrapolation * keep
    scale = 0.1 * math.log(cfg.rope_factor) + 1.0 if cfg.rope_factor > 1 else 1.0
    return inv_freq.float(), scale


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)


def swiglu(gate_up: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    gate, up = gate_up[..., ::2], gate_up[..., 1::2]
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return (up + 1) * (gate * torch.sigmoid(gate * alpha))


class Attention(nn.Module):
    def __init__(self, cfg: NanoConfig, sliding: bool):
        super().__init__()
        self.cfg, self.sliding = cfg, sliding
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(h, cfg.num_attention_heads * d)
        self.k_proj = nn.Linear(h, cfg.num_key_value_heads * d)
        self.v_proj = nn.Linear(h, cfg.num_key_value_heads * d)
        self.o_proj = nn.Linear(cfg.num_attention_heads * d, h)
        self.sinks = nn.Parameter(torch.zeros(cfg.num_attention_heads))

    def _split(self, x, proj, heads):
        b, t, _ = x.shape
        return proj(x).view(b, t, heads, self.cfg.head_dim).transpose(1, 2)

    def _attend(self, q, k, v, q_pos, k_pos):
        """q [B,Hq,T,D], k/v [B,Hkv,S,D] (B may broadcast); positions are absolute."""
        groups = self.cfg.num_attention_heads // self.cfg.num_key_value_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.cfg.head_dim ** -0.5
        visible = k_pos[None, :] <= q_pos[:, None]
        if self.sliding:
            visible = visible & (q_pos[:, None] - k_pos[None, :] < self.cfg.sliding_window)
        scores = scores.masked_fill(~visible, float("-inf"))
        sinks = self.sinks.view(1, -1, 1, 1).expand(*scores.shape[:-1], 1)
        probs = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
        return torch.matmul(probs, v)

    def forward(self, xp, xs, rope):
        """xp [1,P,H] shared prefix (P may be 0), xs [B,S,H]. Returns (yp, ys)."""
        cfg = self.cfg
        cos, sin = rope
        P, S = xp.shape[1], xs.shape[1]
        qp, kp, vp = (self._split(xp, m, n) for m, n in (
            (self.q_proj, cfg.num_attention_heads), (self.k_proj, cfg.num_key_value_heads),
            (self.v_proj, cfg.num_key_value_heads)))
        qs, ks, vs = (self._split(xs, m, n) for m, n in (
            (self.q_proj, cfg.num_attention_heads), (self.k_proj, cfg.num_key_value_heads),
            (self.v_proj, cfg.num_key_value_heads)))
        qp, kp = rotate(qp, cos[:P], sin[:P]), rotate(kp, cos[:P], sin[:P])
        qs, ks = rotate(qs, cos[P:P + S], sin[P:P + S]), rotate(ks, cos[P:P + S], sin[P:P + S])
        pos = torch.arange(P + S, device=xs.device)
        B = xs.shape[0]
        k_all = torch.cat([kp.expand(B, -1, -1, -1), ks], dim=2)
        v_all = torch.cat([vp.expand(B, -1, -1, -1), vs], dim=2)
        ys = self._attend(qs, k_all, v_all, pos[P:], pos)
        ys = self.o_proj(ys.transpose(1, 2).reshape(B, S, -1))
        if P == 0:
            return xp, ys
        yp = self._attend(qp, kp, vp, pos[:P], pos[:P])
        yp = self.o_proj(yp.transpose(1, 2).reshape(1, P, -1))
        return yp, ys


class Experts(nn.Module):
    """Router + experts. Weights are kept as [E, out, in] like the MXFP4 checkpoint rows."""

    def __init__(self, cfg: NanoConfig):
        super().__init__()
        self.cfg = cfg
        e, h, i = cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size
        self.router = nn.Linear(h, e)
        self.gate_up = nn.Parameter(torch.randn(e, 2 * i, h) * 0.02)
        self.gate_up_bias = nn.Parameter(torch.zeros(e, 2 * i))
        self.down = nn.Parameter(torch.randn(e, h, i) * 0.02)
        self.down_bias = nn.Parameter(torch.zeros(e, h))
        self.fake_quant = False

    def weights(self):
        if not self.fake_quant:
            return self.gate_up, self.down
        return mxfp4_fake.fake_quantize(self.gate_up), mxfp4_fake.fake_quantize(self.down)

    def forward(self, x):  # x [N, H]
        cfg = self.cfg
        top_vals, top_idx = torch.topk(self.router(x), cfg.num_experts_per_tok, dim=-1)
        route = torch.softmax(top_vals, dim=-1)
        gate_up, down = self.weights()
        out = torch.zeros_like(x)
        for e in range(cfg.num_local_experts):
            token, slot = torch.where(top_idx == e)
            if token.numel() == 0:
                continue
            h = swiglu(x[token] @ gate_up[e].t() + self.gate_up_bias[e],
                       cfg.swiglu_alpha, cfg.swiglu_limit)
            y = (h @ down[e].t() + self.down_bias[e]) * route[token, slot, None]
            out = out.index_add(0, token, y)
        return out


class Block(nn.Module):
    def __init__(self, cfg: NanoConfig, sliding: bool):
        super().__init__()
        self.cfg = cfg
        self.input_norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.post_attention_norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.attn = Attention(cfg, sliding)
        self.mlp = Experts(cfg)

    def forward(self, xp, xs, rope):
        eps = self.cfg.rms_norm_eps
        yp, ys = self.attn(rms_norm(xp, self.input_norm, eps), rms_norm(xs, self.input_norm, eps),
                           rope)
        xp, xs = xp + yp, xs + ys
        P, (B, S, H) = xp.shape[1], xs.shape
        flat = torch.cat([xp.reshape(P, H), xs.reshape(B * S, H)])
        flat = flat + self.mlp(rms_norm(flat, self.post_attention_norm, eps))
        return flat[:P].view(1, P, H), flat[P:].view(B, S, H)


class NanoGptOss(nn.Module):
    def __init__(self, cfg: NanoConfig, vocab_ids: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("vocab_ids", vocab_ids.long(), persistent=True)
        n = len(vocab_ids)
        self.embed = nn.Parameter(torch.randn(n, cfg.hidden_size) * 0.02)
        self.layers = nn.ModuleList(Block(cfg, t == "sliding_attention") for t in cfg.layer_types())
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.lm_head = nn.Parameter(torch.randn(n, cfg.hidden_size) * 0.02)
        inv_freq, self.rope_scale = yarn_inv_freq(cfg)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # the unseen ids' share of the normalizer: (V - n) * exp(0)
        self.unseen_logit = math.log(cfg.vocab_size - n)

    def set_fake_quant(self, on: bool) -> None:
        for layer in self.layers:
            layer.mlp.fake_quant = on

    def rope(self, length: int):
        freqs = torch.outer(torch.arange(length, dtype=torch.float32), self.inv_freq)
        return freqs.cos() * self.rope_scale, freqs.sin() * self.rope_scale

    def forward(self, prefix: torch.Tensor, suffix: torch.Tensor) -> torch.Tensor:
        """prefix [P] and suffix [B,S] in *local* (reduced) ids -> hidden states [B,S,H]."""
        rope = self.rope(prefix.shape[0] + suffix.shape[1])
        xp, xs = self.embed[prefix][None], self.embed[suffix]
        for layer in self.layers:
            xp, xs = layer(xp, xs, rope)
        return rms_norm(xs, self.norm, self.cfg.rms_norm_eps)

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
        lookup = torch.full((self.cfg.vocab_size,), -1, dtype=torch.long)
        lookup[self.vocab_ids] = torch.arange(len(self.vocab_ids))
        local = lookup[ids]
        if (local < 0).any():
            raise ValueError(f"token id {int(ids[local < 0][0])} is not in the nano vocabulary")
        return local
