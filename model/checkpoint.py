"""Checkpoint files -> (GptOssConfig, tensors under canonical names), memory-mapped and checked.

Layouts:
  * Hugging Face: `config.json` + `model.safetensors` or `model-*.safetensors` (with or without
    `model.safetensors.index.json`). Experts are MXFP4 (`*_blocks`/`*_scales` uint8,
    `quantization_config.quant_method == "mxfp4"`) or plain float (`gate_up_proj` [E, H, 2I],
    `down_proj` [E, I, H], as transformers saves after dequantizing): those are quantized to
    MXFP4 here, one expert at a time.
  * Original: `original/config.json` + `original/*.safetensors` (`block.N.*` names, fused qkv).
    The folder itself or its parent may be given.
  * Compact (the embedded model): Hugging Face layout plus `model.vocab_ids` (int64 [n]); the
    embedding and unembedding then have n rows (returned as they are, with `model.vocab_ids`;
    the model treats every other row as zero, see GptOss).

Canonical names are the Hugging Face ones. Tensors are zero-copy views of the files (mmap,
copy-on-write), so packed experts stay as uint8 pages of the file until touched. Every problem
raises CheckpointError with one line naming the file and the tensor or field.

Only regular files of the folder are read: a link may lead into the folder or, in a Hugging
Face cache snapshot, into its own repository's blobs (config.checkpoint_roots), nowhere else.
A safetensors header may name only tensors of the config, and is refused unread when it is
longer than those need.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import mxfp4
from .config import ConfigError, GptOssConfig, checkpoint_roots, open_regular, read_json

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
          "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
          "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
ITEMSIZE = {name: dtype.itemsize for name, dtype in DTYPES.items()}
FLOATS = {"F64", "F32", "F16", "BF16"}
MAX_HEADER = 100_000_000  # the format's own limit on the JSON header
# With a config, a header may hold only that config's tensors: a real entry is ~100 bytes of
# JSON, so 512 per allowed name plus room for __metadata__ refuses a padded or stuffed header
# (58 MB of extra entries once took 13 s and 1 GB to parse) before it is read.
HEADER_BYTES_PER_TENSOR = 512
HEADER_SLACK = 64 << 10
EXPERT_PARTS = ("gate_up_proj_blocks", "gate_up_proj_scales", "gate_up_proj_bias",
                "down_proj_blocks", "down_proj_scales", "down_proj_bias")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message is one line naming file and tensor."""


@dataclass
class TensorInfo:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int


class SafetensorsFiles:
    """Tensor name -> zero-copy tensor across the shards of one folder."""

    def __init__(self, files: list[Path], names: frozenset[str] | None = None):
        """`names`: the only tensor names the files may hold (None: any)."""
        self.infos: dict[str, TensorInfo] = {}
        self._maps: dict[Path, mmap.mmap] = {}
        for file in files:
            for name, info in _read_header(file, names).items():
                if name in self.infos:
                    raise CheckpointError(f"{file}: tensor {name!r} is also in "
                                          f"{self.infos[name].file.name}")
                self.infos[name] = info

    def __contains__(self, name: str) -> bool:
        return name in self.infos

    def tensor(self, name: str) -> torch.Tensor:
        info = self.infos[name]
        if info.file not in self._maps:
            with _open(info.file) as handle:
                self._maps[info.file] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        count = 1
        for size in info.shape:
            count *= size
        if count == 0:
            return torch.empty(info.shape, dtype=DTYPES[info.dtype])
        flat = torch.frombuffer(self._maps[info.file], dtype=DTYPES[info.dtype], count=count,
                                offset=info.start)
        return flat.view(info.shape)

    def release(self, name: str) -> None:
        """Give back the resident pages of a tensor that was copied or converted (its view
        stays valid: a later access reads the file again)."""
        info = self.infos.get(name)
        if info is None or info.file not in self._maps or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        start = -(-info.start // page) * page
        end = info.end // page * page
        if end > start:
            self._maps[info.file].madvise(mmap.MADV_DONTNEED, start, end - start)

    def prefetch(self, name: str) -> None:
        """Read a mapped tensor's bytes into the page cache on a background thread. The pages
        join the process (and its resident size) only when touched, and a first touch is then
        a minor fault, not a disk read (~6 ms per embedding row on the development VM, where
        MADV_WILLNEED and fadvise start no read-ahead; plain reads do)."""
        info = self.infos.get(name)
        if info is not None:
            threading.Thread(target=_read_through, args=(info.file, info.start, info.end),
                             daemon=True, name=f"prefetch {name}").start()


def _read_through(file: Path, start: int, end: int, chunk: int = 8 << 20) -> None:
    try:
        with _open(file) as handle:
            for offset in range(start, end, chunk):
                os.pread(handle.fileno(), min(chunk, end - offset), offset)
    except (OSError, CheckpointError):  # only a speed-up: the mapping reads the file on demand
        pass


def _open(file: Path):
    """A safetensors file, only as a regular file of its folder (config.open_regular)."""
    return open_regular(file, CheckpointError)


class CheckpointTensors(dict):
    """Canonical name -> tensor, able to release the file pages behind a name."""

    def __init__(self, store: SafetensorsFiles, origin: dict[str, str] | None = None):
        super().__init__()
        self.store = store
        self.origin = origin or {}  # canonical name -> stored name, when they differ

    def release(self, name: str) -> None:
        self.store.release(self.origin.get(name, name))

    def prefetch(self, name: str) -> None:
        self.store.prefetch(self.origin.get(name, name))


def _read_header(file: Path, names: frozenset[str] | None = None) -> dict[str, TensorInfo]:
    """Every entry checked against the file before anything is mapped: a known dtype, a shape of
    natural numbers, offsets inside the data whose length is the shape's elements times the
    item size, and no two tensors sharing bytes. With `names`, the header's size and entry
    count are bounded by them before it is read and parsed, and any other name is refused."""
    try:
        with _open(file) as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{file}: truncated safetensors file ({size} bytes, no header)")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER:
                raise CheckpointError(f"{file}: safetensors header of {length} bytes is over the "
                                      f"format's limit of {MAX_HEADER}")
            if 8 + length > size:
                raise CheckpointError(f"{file}: truncated safetensors file (header needs {length} "
                                      f"bytes, file has {size})")
            limit = HEADER_SLACK + HEADER_BYTES_PER_TENSOR * len(names) if names else None
            if limit is not None and length > limit:
                raise CheckpointError(f"{file}: safetensors header of {length} bytes is larger "
                                      f"than this config's {len(names)} tensors need (at most "
                                      f"{limit} bytes)")
            raw = handle.read(length)
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # also integers of over 4,300 digits
        raise CheckpointError(f"{file}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (not a JSON object)")
    base, data_size = 8 + length, size - 8 - length
    # Names are unique keys of the object, so known names also bound the entry count.
    unknown = next((name for name in header if name != "__metadata__" and name not in names),
                   None) if names is not None else None
    if unknown is not None:
        raise CheckpointError(f"{file}: unknown tensor {unknown[:200]!r} (not a tensor of this "
                              f"config)")
    infos = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        infos[name] = _entry(file, name, entry, base, data_size)
    spans = sorted((info.start, info.end, name) for name, info in infos.items()
                   if info.end > info.start)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise CheckpointError(f"{file}: tensors {first!r} and {second!r} overlap "
                                  f"(bytes {start - base} to {end - base})")
    return infos


def _entry(file: Path, name: str, entry, base: int, data_size: int) -> TensorInfo:
    def bad(problem: str):
        return CheckpointError(f"{file}: tensor {name!r} {problem}")

    if not isinstance(entry, dict):
        raise bad("has no header entry object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise bad(f"has unsupported dtype {json.dumps(dtype)[:40]}")
    if not isinstance(shape, list) or len(shape) > 16 or not all(map(_natural, shape)):
        raise bad(f"has an invalid shape {json.dumps(shape)[:60]}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_natural, offsets)) \
            or offsets[0] > offsets[1]:
        raise bad(f"has invalid data_offsets {json.dumps(offsets)[:60]}")
    start, end = offsets
    if end > data_size:
        raise bad(f"runs past the end of the file (truncated file: tensor ends at byte "
                  f"{base + end}, file has {base + data_size})")
    count = math.prod(shape)
    if end - start != count * ITEMSIZE[dtype]:
        raise bad(f"has data_offsets [{start}, {end}] ({end - start} bytes), but shape "
                  f"{shape} of {dtype} needs {count * ITEMSIZE[dtype]} bytes")
    return TensorInfo(file, dtype, tuple(shape), base + start, base + end)


def _natural(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _inside(folder: Path, file: Path, where: Path) -> Path:
    """`file`, if it really is a file of `folder` (symbolic links resolved). A Hugging Face cache
    snapshot's links into its own repository's blobs folder are files of the snapshot."""
    try:
        real = file.resolve()
    except (OSError, RuntimeError):  # a loop of links
        raise CheckpointError(f"{where}: shard {file.name} cannot be resolved (a loop of "
                              f"symbolic links?)") from None
    if not any(real.is_relative_to(root) for root in checkpoint_roots(folder)):
        raise CheckpointError(f"{where}: shard {file.name} is outside the checkpoint folder "
                              f"(it resolves to {real})")
    if not real.is_file():
        raise CheckpointError(f"{where}: shard {file.name} is missing or not a regular file")
    return file


def _safetensors_files(folder: Path) -> tuple[list[Path], Path | None]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = read_json(index).get("weight_map")
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from None
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: not a safetensors index (no weight_map object)")
        for tensor, name in weight_map.items():
            # A shard is a file name in this folder: never absolute, never up and out.
            if not isinstance(name, str) or not name or name.startswith(("/", "\\")) or \
                    ".." in Path(name).parts or "\x00" in name:
                raise CheckpointError(f"{index}: weight_map entry for {tensor!r} names "
                                      f"{json.dumps(name)[:80]}, not a file of the folder")
        files = [folder / name for name in sorted(set(weight_map.values()))]
        for file in files:
            if not file.exists():
                raise CheckpointError(f"{index}: shard {file.name} is missing")
            _inside(folder, file, index)
        return files, index
    files = [_inside(folder, file, folder) for file in sorted(folder.glob("*.safetensors"))]
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors files")
    return files, None


# ---- layouts -----------------------------------------------------------------------------

def detect(path: Path) -> tuple[str, Path]:
    """('hf' | 'original', folder holding its config.json and safetensors)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    config = path / "config.json"
    if config.exists():
        data = read_json(config)
        if "num_experts" in data and "num_local_experts" not in data:
            return "original", path
        if any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").exists():
            return "hf", path
    if (path / "original" / "config.json").exists():
        return "original", path / "original"
    if config.exists():
        return "hf", path
    raise CheckpointError(f"{path}: no config.json (neither Hugging Face nor original layout)")


def read_config(path: Path) -> tuple[GptOssConfig, str, Path]:
    try:
        layout, folder = detect(path)
        source = folder / "config.json"
        data = read_json(source)
        if layout == "original":
            return GptOssConfig.from_original(data, str(source)), layout, folder
        quant = (data.get("quantization_config") or {}).get("quant_method")
        if quant is not None and quant != "mxfp4":
            raise CheckpointError(f"{source}: unknown quant_method {quant!r} (supported: mxfp4)")
        return GptOssConfig.from_hf(data, str(source)), layout, folder
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def expected_shapes(config: GptOssConfig) -> dict[str, tuple[int, ...]]:
    """Canonical (HF) tensor name -> shape, experts packed."""
    c = config
    H, D, E, I = c.hidden_size, c.head_dim, c.num_local_experts, c.intermediate_size
    q, kv = c.num_attention_heads * D, c.num_key_value_heads * D
    shapes = {"model.embed_tokens.weight": (c.vocab_size, H), "model.norm.weight": (H,),
              "lm_head.weight": (c.vocab_size, H)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
            p + "self_attn.q_proj.weight": (q, H), p + "self_attn.q_proj.bias": (q,),
            p + "self_attn.k_proj.weight": (kv, H), p + "self_attn.k_proj.bias": (kv,),
            p + "self_attn.v_proj.weight": (kv, H), p + "self_attn.v_proj.bias": (kv,),
            p + "self_attn.o_proj.weight": (H, q), p + "self_attn.o_proj.bias": (H,),
            p + "self_attn.sinks": (c.num_attention_heads,),
            p + "mlp.router.weight": (E, H), p + "mlp.router.bias": (E,),
            p + "mlp.experts.gate_up_proj_blocks": (E, 2 * I, H // 32, 16),
            p + "mlp.experts.gate_up_proj_scales": (E, 2 * I, H // 32),
            p + "mlp.experts.gate_up_proj_bias": (E, 2 * I),
            p + "mlp.experts.down_proj_blocks": (E, H, I // 32, 16),
            p + "mlp.experts.down_proj_scales": (E, H, I // 32),
            p + "mlp.experts.down_proj_bias": (E, H),
        })
    return shapes


def allowed_names(config: GptOssConfig, layout: str) -> frozenset[str]:
    """Every tensor name a checkpoint of `config` may hold in `layout`: HF, 19 per layer + 3
    (plus the float experts' `gate_up_proj`/`down_proj` and a compact model's
    `model.vocab_ids`); original, 13 per layer + 3 (q, k and v are one fused qkv)."""
    if layout == "original":
        return frozenset(source for source, _ in original_names(config).values())
    names = set(expected_shapes(config)) | {"model.vocab_ids"}
    for i in range(config.num_hidden_layers):
        names |= {f"model.layers.{i}.mlp.experts.gate_up_proj",
                  f"model.layers.{i}.mlp.experts.down_proj"}
    return frozenset(names)


def original_names(config: GptOssConfig) -> dict[str, tuple[str, slice | None]]:
    """Canonical name -> (original name, row slice of the fused qkv or None)."""
    D = config.head_dim
    q, kv = config.num_attention_heads * D, config.num_key_value_heads * D
    parts = {"q_proj": slice(0, q), "k_proj": slice(q, q + kv), "v_proj": slice(q + kv, q + 2 * kv)}
    names = {"model.embed_tokens.weight": ("embedding.weight", None),
             "model.norm.weight": ("norm.scale", None),
             "lm_head.weight": ("unembedding.weight", None)}
    for i in range(config.num_hidden_layers):
        p, o = f"model.layers.{i}.", f"block.{i}."
        for proj, rows in parts.items():
            names[p + f"self_attn.{proj}.weight"] = (o + "attn.qkv.weight", rows)
            names[p + f"self_attn.{proj}.bias"] = (o + "attn.qkv.bias", rows)
        names.update({
            p + "input_layernorm.weight": (o + "attn.norm.scale", None),
            p + "self_attn.o_proj.weight": (o + "attn.out.weight", None),
            p + "self_attn.o_proj.bias": (o + "attn.out.bias", None),
            p + "self_attn.sinks": (o + "attn.sinks", None),
            p + "post_attention_layernorm.weight": (o + "mlp.norm.scale", None),
            p + "mlp.router.weight": (o + "mlp.gate.weight", None),
            p + "mlp.router.bias": (o + "mlp.gate.bias", None),
            p + "mlp.experts.gate_up_proj_blocks": (o + "mlp.mlp1_weight.blocks", None),
            p + "mlp.experts.gate_up_proj_scales": (o + "mlp.mlp1_weight.scales", None),
            p + "mlp.experts.gate_up_proj_bias": (o + "mlp.mlp1_bias", None),
            p + "mlp.experts.down_proj_blocks": (o + "mlp.mlp2_weight.blocks", None),
            p + "mlp.experts.down_proj_scales": (o + "mlp.mlp2_weight.scales", None),
            p + "mlp.experts.down_proj_bias": (o + "mlp.mlp2_bias", None),
        })
    return names


class _Reader:
    """Fetches canonical tensors from one folder, checking name, dtype and shape."""

    def __init__(self, folder: Path, names: frozenset[str] | None = None):
        self.folder = folder
        self.files, self.index = _safetensors_files(folder)
        self.store = SafetensorsFiles(self.files, names)
        self.where = self.index or (self.files[0] if len(self.files) == 1 else folder)

    def get(self, name: str, shape: tuple[int, ...] | None, kinds: set[str]) -> torch.Tensor:
        if name not in self.store:
            raise CheckpointError(f"{self.where}: missing tensor {name!r}")
        info = self.store.infos[name]
        if info.dtype not in kinds:
            raise CheckpointError(f"{info.file}: tensor {name!r} has dtype {info.dtype}, "
                                  f"expected {' or '.join(sorted(kinds))}")
        if shape is not None and info.shape != tuple(shape):
            raise CheckpointError(f"{info.file}: tensor {name!r} has shape {list(info.shape)}, "
                                  f"expected {list(shape)}")
        return self.store.tensor(name)


def _kinds(name: str) -> set[str]:
    return {"U8"} if name.endswith(("_blocks", "_scales")) else FLOATS


def load_tensors(path: Path) -> tuple[GptOssConfig, CheckpointTensors]:
    """Read and check a checkpoint; returns canonical tensors (views of the files, except
    experts quantized on load)."""
    config, layout, folder = read_config(path)
    reader = _Reader(folder, allowed_names(config, layout))
    shapes = expected_shapes(config)
    tensors = CheckpointTensors(reader.store)
    if layout == "original":
        sources = original_names(config)
        tensors.origin = {name: source for name, (source, _) in sources.items()}
        for name, shape in shapes.items():
            source, rows = sources[name]
            tensor = reader.get(source, None, _kinds(name))
            tensors[name] = tensor[rows] if rows is not None else tensor
            if tuple(tensors[name].shape) != shape:
                info = reader.store.infos[source]
                raise CheckpointError(f"{info.file}: tensor {source!r} has shape "
                                      f"{list(info.shape)}, which does not fit {name} {list(shape)}")
        return config, tensors

    vocab_ids = None
    if "model.vocab_ids" in reader.store:
        vocab_ids = reader.get("model.vocab_ids", None, {"I64", "I32"}).long()
        if vocab_ids.dim() != 1 or (vocab_ids.numel() and (int(vocab_ids.min()) < 0 or
                                                            int(vocab_ids.max()) >= config.vocab_size)):
            raise CheckpointError(f"{reader.store.infos['model.vocab_ids'].file}: tensor "
                                  f"'model.vocab_ids' must be 1-D ids below {config.vocab_size}")
    for name, shape in shapes.items():
        if name.endswith(("_blocks", "_scales")) and _float_experts(reader, name):
            continue  # quantized below
        if vocab_ids is not None and name in ("model.embed_tokens.weight", "lm_head.weight"):
            tensors[name] = reader.get(name, (vocab_ids.numel(), config.hidden_size), FLOATS)
            tensors["model.vocab_ids"] = vocab_ids
            continue
        tensors[name] = reader.get(name, shape, _kinds(name))
    for i in range(config.num_hidden_layers):
        prefix = f"model.layers.{i}.mlp.experts."
        if _float_experts(reader, prefix + "gate_up_proj_blocks"):
            tensors.update(_quantize_float_experts(reader, prefix, config))
    return config, tensors


def _float_experts(reader: _Reader, name: str) -> bool:
    """Whether this layer stores its experts unquantized (`gate_up_proj`, `down_proj`)."""
    prefix = name.rsplit(".", 1)[0] + "."
    return prefix + "gate_up_proj_blocks" not in reader.store and prefix + "gate_up_proj" in reader.store


def _quantize_float_experts(reader: _Reader, prefix: str, config: GptOssConfig) -> dict:
    E, H, I = config.num_local_experts, config.hidden_size, config.intermediate_size
    gate_up = reader.get(prefix + "gate_up_proj", (E, H, 2 * I), FLOATS)
    down = reader.get(prefix + "down_proj", (E, I, H), FLOATS)
    out = {}
    for name, weight in (("gate_up_proj", gate_up), ("down_proj", down)):
        parts = [mxfp4.quantize(weight[e].transpose(0, 1)) for e in range(E)]  # [out, in] rows
        out[prefix + name + "_blocks"] = torch.stack([b for b, _ in parts])
        out[prefix + name + "_scales"] = torch.stack([s for _, s in parts])
        reader.store.release(prefix + name)  # the wide copy's pages: not needed any more
    return out
