"""GptOssConfig: the architecture's numbers, read from either checkpoint layout.

Hugging Face layout: `config.json` with transformers' field names (`num_local_experts`,
`rope_scaling` or `rope_parameters`, `layer_types`, ...). Original layout (`original/config.json`):
`num_experts`, `experts_per_token`, `initial_context_length`, `rope_scaling_factor`,
`rope_ntk_alpha`/`rope_ntk_beta`; sliding attention on even layers.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO


class ConfigError(ValueError):
    """A config file that cannot describe a gpt-oss model (message names file and field)."""


# Generous but finite bounds (the released models are far inside them). A config outside them
# is a typo or an attack, refused before anything is sized from it (10 million layers once
# meant 30 s and 5 GB of expected tensor names before any error).
INT_BOUNDS = {
    "vocab_size": 1 << 21, "hidden_size": 1 << 16, "intermediate_size": 1 << 18,
    "num_hidden_layers": 1024, "num_attention_heads": 1024, "num_key_value_heads": 1024,
    "head_dim": 1024, "num_local_experts": 4096, "num_experts_per_tok": 4096,
    "sliding_window": 1 << 24, "rope_original_context": 1 << 24,
    "max_position_embeddings": 1 << 24,
}
POSITIVE_FLOATS = ("rms_norm_eps", "rope_theta", "rope_factor", "swiglu_alpha", "swiglu_limit")
FLOATS = POSITIVE_FLOATS + ("rope_beta_fast", "rope_beta_slow")
LAYER_TYPES = ("sliding_attention", "full_attention")
HF_NAMES = {"rope_factor": "rope_scaling.factor",
            "rope_original_context": "rope_scaling.original_max_position_embeddings",
            "rope_beta_fast": "rope_scaling.beta_fast", "rope_beta_slow": "rope_scaling.beta_slow"}
ORIGINAL_NAMES = {"num_local_experts": "num_experts", "num_experts_per_tok": "experts_per_token",
                  "rope_factor": "rope_scaling_factor", "rope_original_context":
                  "initial_context_length", "rope_beta_fast": "rope_ntk_beta",
                  "rope_beta_slow": "rope_ntk_alpha"}


def check_values(values: dict, source: str, names: dict[str, str]) -> dict:
    """Raises ConfigError (file and field named) unless the values can size a model."""
    def fail(name, problem):
        raise ConfigError(f"{source}: config field {names.get(name, name)!r} {problem}")

    def show(value) -> str:
        return json.dumps(value)[:40]

    for name in FLOATS:
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            fail(name, f"must be a finite number, not {show(value)}")
        if value < 0 or (value == 0 and name in POSITIVE_FLOATS):
            fail(name, f"is {show(value)}, must be "
                       f"{'positive' if name in POSITIVE_FLOATS else '>= 0'}")
    for name, high in INT_BOUNDS.items():  # hidden_size and heads come before head_dim
        value = values.get(name)
        if value is None and name == "sliding_window":
            continue  # no window: full attention everywhere
        if value is None and name == "head_dim":
            value = values[name] = values["hidden_size"] // values["num_attention_heads"]
        if not isinstance(value, int) or isinstance(value, bool):
            fail(name, f"must be an integer, not {show(value)}")
        if not 1 <= value <= high:
            fail(name, f"is {show(value)}, outside 1 to {high}")
    if values["num_attention_heads"] % values["num_key_value_heads"]:
        fail("num_key_value_heads", f"({values['num_key_value_heads']}) must divide "
                                    f"num_attention_heads ({values['num_attention_heads']})")
    if values["num_experts_per_tok"] > values["num_local_experts"]:
        fail("num_experts_per_tok", f"({values['num_experts_per_tok']}) is more than the "
                                    f"{values['num_local_experts']} experts")
    layer_types = values.get("layer_types") or []
    if not isinstance(layer_types, list) or (layer_types and (
            len(layer_types) != values["num_hidden_layers"] or
            any(kind not in LAYER_TYPES for kind in layer_types))):
        fail("layer_types", f"must list {values['num_hidden_layers']} of {' / '.join(LAYER_TYPES)}")
    return values


@dataclass
class GptOssConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_local_experts: int
    num_experts_per_tok: int
    sliding_window: int | None = 128
    layer_types: list[str] = field(default_factory=list)
    rms_norm_eps: float = 1e-5
    rope_theta: float = 150000.0
    rope_factor: float = 32.0
    rope_original_context: int = 4096
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    rope_truncate: bool = False
    swiglu_alpha: float = 1.702
    swiglu_limit: float = 7.0
    max_position_embeddings: int = 131072
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if not self.layer_types:
            self.layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention"
                                for i in range(self.num_hidden_layers)]

    def window(self, layer: int) -> int | None:
        """Attention window of a layer (None = full causal attention)."""
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None

    # ---- Hugging Face layout -------------------------------------------------------------
    @classmethod
    def from_hf(cls, data: dict, source: str = "config.json") -> "GptOssConfig":
        get = _getter(data, source)
        rope = data.get("rope_parameters") or data.get("rope_scaling") or {}
        if not isinstance(rope, dict):
            raise ConfigError(f"{source}: config field 'rope_scaling' must be an object")
        rope_type = rope.get("rope_type", rope.get("type", "yarn" if rope else "default"))
        if rope_type not in ("yarn", "default"):
            raise ConfigError(f"{source}: unsupported rope type {rope_type!r} (yarn or default)")
        yarn = rope_type == "yarn"
        values = dict(
            vocab_size=get("vocab_size"), hidden_size=get("hidden_size"),
            intermediate_size=get("intermediate_size"), num_hidden_layers=get("num_hidden_layers"),
            num_attention_heads=get("num_attention_heads"),
            num_key_value_heads=get("num_key_value_heads"),
            head_dim=data.get("head_dim"),
            num_local_experts=get("num_local_experts", "num_experts"),
            num_experts_per_tok=get("num_experts_per_tok", "experts_per_token"),
            sliding_window=data.get("sliding_window", 128),
            layer_types=data.get("layer_types") or [],
            rms_norm_eps=data.get("rms_norm_eps", 1e-5),
            rope_theta=rope.get("rope_theta", data.get("rope_theta", 150000.0)),
            rope_factor=rope.get("factor", 32.0) if yarn else 1.0,
            rope_original_context=rope.get("original_max_position_embeddings",
                                           data.get("initial_context_length", 4096)),
            rope_beta_fast=rope.get("beta_fast") or 32.0,
            rope_beta_slow=rope.get("beta_slow") or 1.0,
            # transformers truncates the YaRN correction range unless told not to
            rope_truncate=rope.get("truncate", True),
            swiglu_alpha=data.get("swiglu_alpha", 1.702),
            swiglu_limit=data.get("swiglu_limit", 7.0),
            max_position_embeddings=data.get("max_position_embeddings", 131072),
            eos_token_id=data.get("eos_token_id"), pad_token_id=data.get("pad_token_id"),
        )
        return cls(**check_values(values, source, HF_NAMES))

    def to_hf(self, quantized: bool = True) -> dict:
        data = {
            "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads, "head_dim": self.head_dim,
            "num_local_experts": self.num_local_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "experts_per_token": self.num_experts_per_tok,
            "sliding_window": self.sliding_window, "layer_types": list(self.layer_types),
            "rms_norm_eps": self.rms_norm_eps, "rope_theta": self.rope_theta,
            "rope_scaling": {"rope_type": "yarn", "factor": self.rope_factor,
                             "beta_fast": self.rope_beta_fast, "beta_slow": self.rope_beta_slow,
                             "original_max_position_embeddings": self.rope_original_context,
                             "truncate": self.rope_truncate},
            "initial_context_length": self.rope_original_context,
            "swiglu_limit": self.swiglu_limit,
            "max_position_embeddings": self.max_position_embeddings,
            "attention_bias": True, "attention_dropout": 0.0, "hidden_act": "silu",
            "tie_word_embeddings": False, "use_cache": True, "output_router_logits": False,
            "router_aux_loss_coef": 0.9, "initializer_range": 0.02,
            "eos_token_id": self.eos_token_id, "pad_token_id": self.pad_token_id,
        }
        if quantized:
            data["quantization_config"] = {
                "quant_method": "mxfp4",
                "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                           "model.embed_tokens", "lm_head"]}
        return data

    # ---- original layout -----------------------------------------------------------------
    @classmethod
    def from_original(cls, data: dict, source: str = "original/config.json") -> "GptOssConfig":
        get = _getter(data, source)
        layers = get("num_hidden_layers")
        values = dict(
            vocab_size=get("vocab_size"), hidden_size=get("hidden_size"),
            intermediate_size=get("intermediate_size"), num_hidden_layers=layers,
            num_attention_heads=get("num_attention_heads"),
            num_key_value_heads=get("num_key_value_heads"), head_dim=get("head_dim"),
            num_local_experts=get("num_experts"), num_experts_per_tok=get("experts_per_token"),
            sliding_window=get("sliding_window"),
            rope_theta=get("rope_theta"), rope_factor=data.get("rope_scaling_factor", 1.0),
            rope_original_context=data.get("initial_context_length", 4096),
            rope_beta_fast=data.get("rope_ntk_beta", 32.0),
            rope_beta_slow=data.get("rope_ntk_alpha", 1.0),
            rope_truncate=False,  # the reference implementation uses the raw range
            swiglu_limit=data.get("swiglu_limit", 7.0),
            max_position_embeddings=data.get("max_position_embeddings"),
        )
        if values["max_position_embeddings"] is None:  # the context YaRN stretches to
            try:
                values["max_position_embeddings"] = int(values["rope_original_context"] *
                                                        values["rope_factor"])
            except (TypeError, ValueError, OverflowError):
                pass  # check_values names the field at fault
        return cls(**check_values(values, source, ORIGINAL_NAMES))

    def to_original(self) -> dict:
        return {
            "num_hidden_layers": self.num_hidden_layers, "num_experts": self.num_local_experts,
            "experts_per_token": self.num_experts_per_tok, "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
            "swiglu_limit": self.swiglu_limit, "head_dim": self.head_dim,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "sliding_window": self.sliding_window,
            "initial_context_length": self.rope_original_context,
            "rope_theta": self.rope_theta, "rope_scaling_factor": self.rope_factor,
            "rope_ntk_alpha": self.rope_beta_slow, "rope_ntk_beta": self.rope_beta_fast,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _getter(data: dict, source: str):
    def get(name: str, *aliases: str):
        for key in (name, *aliases):
            if data.get(key) is not None:
                return data[key]
        raise ConfigError(f"{source}: missing config field {name!r}")
    return get


MAX_CONFIG_BYTES = 16 << 20


def checkpoint_roots(folder: Path) -> tuple[Path, ...]:
    """The real folders the files of a checkpoint folder may be, once links are resolved: the
    folder itself and, for a Hugging Face cache snapshot (REPO/snapshots/HASH, or its
    original/ subfolder), that repository's own blobs folder, where the hub keeps a snapshot's
    files and links to them. A link anywhere else (another repository, /etc) is refused."""
    folder = Path(folder).resolve()
    snapshot = folder.parent if folder.name == "original" else folder
    repo = snapshot.parent.parent  # models--ORG--NAME
    if snapshot.parent.name == "snapshots" and repo.name.startswith("models--"):
        return folder, repo / "blobs"
    return (folder,)


def open_regular(path: Path, error: type[Exception] = ConfigError) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file of its folder (see
    checkpoint_roots); else `error` naming the file. The resolved path is opened without
    following a last link (O_NOFOLLOW), so the file read is the one checked, and without
    blocking (O_NONBLOCK), so a FIFO is refused rather than waited on."""
    path = Path(path)
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a loop of links
        raise error(f"{path}: cannot be resolved (a loop of symbolic links?)") from None
    if not any(real.is_relative_to(root) for root in checkpoint_roots(path.parent)):
        raise error(f"{path}: outside the checkpoint folder (a link to {real})")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | \
        getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the checked file became a link since
            raise error(f"{path}: not a regular file (a symbolic link)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")


def read_json(path: Path) -> dict:
    """A JSON object from a regular file of its checkpoint folder (open_regular)."""
    path = Path(path)
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_CONFIG_BYTES:  # configs are kilobytes
                raise ConfigError(f"{path}: {size} bytes is too large for a config")
            data = json.loads(handle.read(MAX_CONFIG_BYTES + 1))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except ConfigError:
        raise
    except (ValueError, RecursionError) as exc:  # also integers of over 4,300 digits
        raise ConfigError(f"{path}: not valid JSON ({str(exc)[:120]})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return data


def sampling_defaults(folder: Path) -> dict:
    """The checkpoint's recommended sampling, from Hugging Face's generation_config.json:
    {"temperature", "top_p"}; `do_sample: false` means greedy. Empty when the file is absent
    (callers then use gpt-oss's own recommendation, temperature 1.0 and top_p 1.0)."""
    path = Path(folder) / "generation_config.json"
    if not path.is_file():
        return {}
    data = read_json(path)
    if data.get("do_sample") is False:
        return {"temperature": 0.0, "top_p": 1.0}
    values = {key: data[key] for key in ("temperature", "top_p") if key in data}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 <= value <= (1 if key == "top_p" else 100):
            raise ConfigError(f"{path}: field {key!r} must be a number from 0 to "
                              f"{1 if key == 'top_p' else 100}, not {json.dumps(value)[:40]}")
    return {key: float(value) for key, value in values.items()}


# Shapes of the released models and of a tiny test model (layers can be overridden).
PRESETS = {
    "20b": dict(vocab_size=201088, hidden_size=2880, intermediate_size=2880, num_hidden_layers=24,
                num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32,
                num_experts_per_tok=4, eos_token_id=200002, pad_token_id=199999),
    "120b": dict(vocab_size=201088, hidden_size=2880, intermediate_size=2880,
                 num_hidden_layers=36, num_attention_heads=64, num_key_value_heads=8, head_dim=64,
                 num_local_experts=128, num_experts_per_tok=4, eos_token_id=200002,
                 pad_token_id=199999),
    "tiny": dict(vocab_size=1024, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                 num_experts_per_tok=2, sliding_window=8, rope_original_context=64,
                 max_position_embeddings=2048),
}


def preset(name: str, **overrides) -> GptOssConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("num_hidden_layers") is not None and "layer_types" not in overrides:
        values["layer_types"] = []  # re-derive the alternation for the new depth
    return GptOssConfig(**values)
