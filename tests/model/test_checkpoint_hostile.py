"""Malformed and hostile checkpoints, written by hand (struct + json, like the safetensors format
itself), each refused with one line naming the file and the tensor or field, quickly and
without allocating what the file claims."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from agent import model as runtime
from agent.model import CheckpointError
from agent.model.checkpoint import ITEMSIZE, load_tensors
from agent.model.random import write_random

from .conftest import TINY_CONFIGS

ROUTER = "model.layers.1.mlp.router.weight"          # [4, 64] BF16
NORM_A = "model.layers.0.input_layernorm.weight"     # [64] BF16
NORM_B = "model.layers.0.post_attention_layernorm.weight"


def read_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def write_safetensors(path: Path, header, data: bytes, length: int | None = None) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


@pytest.fixture
def folder(checkpoint, tmp_path):
    """A private copy of the tiny random checkpoint (a valid baseline)."""
    out = tmp_path / "ckpt"
    shutil.copytree(checkpoint("base"), out)
    return out


def edit_header(folder: Path, change) -> Path:
    weights = folder / "model.safetensors"
    header, data = read_safetensors(weights)
    change(header)
    write_safetensors(weights, header, data)
    return weights


def refused(path, *needles, load=runtime.load) -> str:
    """The one-line error for `path`, checked to name every needle, within a second's work and
    a few MB of memory (however much the file claims)."""
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(CheckpointError) as info:
            load(path)
        seconds, peak = time.process_time() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and message.strip(), message
    for needle in needles:
        assert needle in message, (needle, message)
    assert seconds < 5 and peak < 32 << 20, (seconds, peak)
    return message


def test_the_baseline_loads(folder):
    model = runtime.load(folder)
    assert model.logits([1, 2, 3]).shape == (3, 1024)


def test_offsets_that_disagree_with_dtype_and_shape(folder):
    """10 bytes for a [4, 64] BF16 tensor: it used to read its neighbours' bytes."""
    def shrink(header):
        start = header[ROUTER]["data_offsets"][0]
        header[ROUTER]["data_offsets"] = [start, start + 10]
    edit_header(folder, shrink)
    refused(folder, "model.safetensors", ROUTER, "(10 bytes)", "[4, 64] of BF16 needs 512 bytes")


def test_overlapping_tensors(folder):
    edit_header(folder, lambda h: h[NORM_B].__setitem__("data_offsets", h[NORM_A]["data_offsets"]))
    refused(folder, "model.safetensors", "overlap", NORM_A, NORM_B)


def test_offsets_past_the_end_of_the_file(folder):
    def extend(header):
        start, end = header[ROUTER]["data_offsets"]
        header[ROUTER]["data_offsets"] = [start + (1 << 40), end + (1 << 40)]
    edit_header(folder, extend)
    refused(folder, "model.safetensors", ROUTER, "past the end of the file")


@pytest.mark.parametrize("field, value, problem", [
    ("dtype", "F4", "unsupported dtype \"F4\""),
    ("dtype", None, "unsupported dtype null"),
    ("shape", [4, -64], "invalid shape [4, -64]"),
    ("shape", [4, True], "invalid shape [4, true]"),
    ("shape", "4x64", "invalid shape \"4x64\""),
    ("shape", [1] * 100, "invalid shape"),
    ("data_offsets", [512, 0], "invalid data_offsets [512, 0]"),
    ("data_offsets", [-512, 0], "invalid data_offsets [-512, 0]"),
    ("data_offsets", [0], "invalid data_offsets [0]"),
    ("data_offsets", [0.0, 512.0], "invalid data_offsets [0.0, 512.0]"),
])
def test_malformed_entries(folder, field, value, problem):
    edit_header(folder, lambda h: h[ROUTER].__setitem__(field, value))
    refused(folder, "model.safetensors", ROUTER, problem)


def test_an_entry_that_is_not_an_object(folder):
    edit_header(folder, lambda h: h.__setitem__(ROUTER, [1, 2, 3]))
    refused(folder, "model.safetensors", ROUTER, "no header entry object")


def test_header_sizes(folder):
    weights = folder / "model.safetensors"
    header, data = read_safetensors(weights)
    text = json.dumps(header).encode()
    write_safetensors(weights, text, data, length=1 << 60)  # would be an exabyte read
    refused(folder, "model.safetensors", "over the format's limit")
    write_safetensors(weights, text, data, length=len(text) + len(data) + 1)
    refused(folder, "model.safetensors", "truncated")


@pytest.mark.parametrize("text, problem", [
    (b"{not json", "not JSON"), (b"\xff\xfe{}", "not JSON"), (b"[1, 2]", "not a JSON object"),
    (b"[" * 50_000, "not JSON"),  # nesting deep enough to exhaust the recursion limit
    (b'{"x": ' + b"9" * 5000 + b"}", "not JSON"),  # over Python's 4,300-digit limit
], ids=["syntax", "encoding", "list", "deep", "digits"])
def test_corrupt_headers(folder, text, problem):
    write_safetensors(folder / "model.safetensors", text, b"")
    refused(folder, "model.safetensors", problem)


def test_a_tensor_in_two_files(folder):
    """Without an index every *.safetensors file is read; a second copy of a name is refused
    (it would silently replace the first)."""
    header, data = read_safetensors(folder / "model.safetensors")
    start, end = header[ROUTER]["data_offsets"]
    entry = dict(header[ROUTER], data_offsets=[0, end - start])
    write_safetensors(folder / "zz-extra.safetensors", {ROUTER: entry}, data[start:end])
    refused(folder, "zz-extra.safetensors", ROUTER, "also in model.safetensors")


def test_random_header_mutations_never_escape_the_checks(folder):
    """Offsets, shapes and dtypes changed at random: a one-line CheckpointError, or tensors
    that each lie inside their own bytes of the file."""
    weights = folder / "model.safetensors"
    header, data = read_safetensors(weights)
    names = [n for n in header if n != "__metadata__"]
    rng = random.Random(0)
    outcomes = {"refused": 0, "loaded": 0}
    for _ in range(150):
        mutated = json.loads(json.dumps(header))
        for _ in range(rng.randint(1, 3)):
            entry = mutated[rng.choice(names)]
            what = rng.choice(["start", "end", "shape", "dtype"])
            if what in ("start", "end"):
                entry["data_offsets"][what == "end"] += rng.choice([-2, -1, 1, 2, 64, -64])
            elif what == "shape":
                entry["shape"] = [max(0, d + rng.choice([-1, 1])) for d in entry["shape"]]
            else:
                entry["dtype"] = rng.choice(["F32", "BF16", "U8", "F16", "I8"])
        write_safetensors(weights, mutated, data)
        try:
            _, tensors = load_tensors(folder)
        except CheckpointError as e:
            assert "\n" not in str(e) and "model.safetensors" in str(e)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        size = weights.stat().st_size
        for info in tensors.store.infos.values():  # the format: bytes = elements x item size
            assert info.end - info.start == math.prod(info.shape) * ITEMSIZE[info.dtype]
            assert 8 <= info.start <= info.end <= size
    assert outcomes["refused"] > 100


# ---- the index -----------------------------------------------------------------------------

def sharded(tmp_path) -> Path:
    out = tmp_path / "sharded"
    write_random(out, TINY_CONFIGS["base"], shard_bytes=1)
    return out


def rewrite_index(folder: Path, change) -> Path:
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    change(data["weight_map"])
    index.write_text(json.dumps(data))
    return index


@pytest.mark.parametrize("name", ["../outside/model.safetensors", "sub/../../x.safetensors",
                                  "/etc/passwd", "", 7])
def test_weight_map_entries_stay_in_the_folder(tmp_path, name):
    folder = sharded(tmp_path)
    (tmp_path / "outside").mkdir()
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shutil.copy(shard, tmp_path / "outside" / "model.safetensors")  # a loadable decoy
    rewrite_index(folder, lambda wm: wm.__setitem__(ROUTER, name))
    refused(folder, "model.safetensors.index.json", ROUTER, "not a file of the folder")


@pytest.mark.parametrize("text, problem", [
    ('{"weight_map": ["model-00001.safetensors"]}', "no weight_map object"),
    ('{"metadata": {}}', "no weight_map object"), ("[]", "not a JSON object"),
    ("{", "not valid JSON")])
def test_indexes_that_are_not_indexes(tmp_path, text, problem):
    folder = sharded(tmp_path)
    (folder / "model.safetensors.index.json").write_text(text)
    refused(folder, "model.safetensors.index.json", problem)


def test_shards_linked_out_of_the_folder_are_refused(tmp_path):
    folder = sharded(tmp_path)
    (tmp_path / "outside").mkdir()
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shutil.move(shard, tmp_path / "outside" / shard.name)
    shard.symlink_to(tmp_path / "outside" / shard.name)
    refused(folder, "model.safetensors.index.json", shard.name, "outside the checkpoint folder")


def test_single_file_linked_out_of_the_folder(folder, tmp_path):
    weights = folder / "model.safetensors"
    shutil.move(weights, tmp_path / "elsewhere.safetensors")
    weights.symlink_to(tmp_path / "elsewhere.safetensors")
    refused(folder, "model.safetensors", "outside the checkpoint folder")
    weights.unlink()
    os.mkfifo(weights)  # opening a FIFO would block forever
    refused(folder, "model.safetensors", "not a regular file")


def test_hugging_face_cache_snapshots_still_load(checkpoint, tmp_path):
    """The hub's cache keeps a snapshot's files as links into the repository's blobs folder:
    those links stay inside the repository and load."""
    repo = tmp_path / "models--test--tiny"
    snapshot, blobs = repo / "snapshots" / "0123abc", repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for file in checkpoint("base").iterdir():
        shutil.copy(file, blobs / f"blob-{file.name}")
        (snapshot / file.name).symlink_to(Path("../../blobs") / f"blob-{file.name}")
    assert runtime.load(snapshot).logits([1, 2]).shape == (2, 1024)


def hub_snapshot(tmp_path: Path, source: Path, repo: str = "models--test--tiny") -> Path:
    """`source`'s files as the hub caches them: REPO/snapshots/HASH/NAME -> ../../blobs/ID
    (one level more for original/), plus a generation_config.json."""
    repo_dir = tmp_path / repo
    snapshot, blobs = repo_dir / "snapshots" / "0123abc", repo_dir / "blobs"
    blobs.mkdir(parents=True)
    (source / "generation_config.json").write_text('{"temperature": 0.5}')
    for file in source.rglob("*"):
        if file.is_file():
            name = file.relative_to(source)
            blob = blobs / f"blob-{len(list(blobs.iterdir()))}"
            shutil.copy(file, blob)
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / name).symlink_to(os.path.relpath(blob, (snapshot / name).parent))
    return snapshot


@pytest.mark.parametrize("layout", ["hf", "original"])
def test_hugging_face_cache_snapshots_load_in_both_layouts(checkpoint, tmp_path, layout):
    source = tmp_path / "source"
    shutil.copytree(checkpoint("base", layout=layout), source)
    snapshot = hub_snapshot(tmp_path, source)
    model = runtime.load(snapshot)
    assert model.logits([1, 2]).shape == (2, 1024)
    assert model.sampling_defaults == {"temperature": 0.5}


@pytest.mark.parametrize("name", ["config.json", "generation_config.json", "model.safetensors"])
def test_links_into_another_repositorys_blobs_are_refused(checkpoint, tmp_path, name):
    """Only the snapshot's own repository counts: a link into a neighbour's blobs is out."""
    source = tmp_path / "source"
    shutil.copytree(checkpoint("base"), source)
    snapshot = hub_snapshot(tmp_path, source)
    other = tmp_path / "models--other--repo" / "blobs"
    other.mkdir(parents=True)
    shutil.copy(snapshot / name, other / "decoy")
    (snapshot / name).unlink()
    (snapshot / name).symlink_to(Path("../../../models--other--repo/blobs/decoy"))
    refused(snapshot, name, "outside the checkpoint folder")


@pytest.mark.parametrize("name", ["config.json", "generation_config.json"])
def test_config_files_linked_out_of_the_folder_are_refused(folder, tmp_path, name):
    """A config or generation config that is a link to a file elsewhere (a valid copy, so only
    the link is at fault) is refused; a link to a file inside the folder is followed."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if name == "generation_config.json":
        (folder / name).write_text('{"temperature": 0.7}')
    shutil.move(folder / name, outside / name)
    (folder / name).symlink_to(outside / name)
    message = refused(folder, name, "outside the checkpoint folder", str(outside / name))
    assert message.startswith(str(folder / name)), message
    (folder / name).unlink()
    (folder / "sub").mkdir()
    shutil.move(outside / name, folder / "sub" / name)
    (folder / name).symlink_to(Path("sub") / name)
    runtime.load(folder)


def test_original_config_linked_out_of_the_folder(checkpoint, tmp_path):
    folder = tmp_path / "orig"
    shutil.copytree(checkpoint("base", layout="original"), folder)
    config = folder / "original" / "config.json"
    shutil.move(config, tmp_path / "config.json")
    config.symlink_to(tmp_path / "config.json")
    refused(folder, "original/config.json", "outside the checkpoint folder")


def test_a_fifo_generation_config_is_never_opened(folder):
    """Opening a FIFO for reading blocks until a writer comes; the checks never open one
    that blocks (a config's FIFO is refused, a generation config's is skipped)."""
    os.mkfifo(folder / "generation_config.json")
    assert runtime.load(folder).sampling_defaults == {}


# ---- what the header may hold ----------------------------------------------------------------

def stuffed(folder: Path, extra: int) -> Path:
    """model.safetensors plus `extra` valid empty tensors (the entries are written as text:
    building 800,000 dicts to dump would take longer than the test)."""
    weights = folder / "model.safetensors"
    header, data = read_safetensors(weights)
    text = json.dumps(header)[:-1].encode() + b"".join(
        b', "extra.%d": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}' % i
        for i in range(extra)) + b"}"
    write_safetensors(weights, text, data)
    return weights


def test_a_header_stuffed_with_800k_tensors_is_refused_unread(folder):
    """58 MB of extra (valid, empty) entries used to take 13 s and 1 GB to accept: the header's
    length alone is now over what the config's tensors need."""
    weights = stuffed(folder, 800_000)
    assert weights.stat().st_size > 50 << 20
    start = time.perf_counter()
    refused(folder, "model.safetensors", "larger than this config's", "tensors need")
    assert time.perf_counter() - start < 1.0


def test_extra_entries_within_the_size_bound_are_refused_by_name(folder):
    """A header small enough to read, with tensors the config does not have: the first is
    named before any entry is checked."""
    stuffed(folder, 300)
    refused(folder, "model.safetensors", "unknown tensor 'extra.0'")


@pytest.mark.parametrize("layout", ["hf", "original"])
def test_unknown_tensors_are_refused_by_name(checkpoint, tmp_path, layout):
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint("base", layout=layout), folder)
    weights = next(folder.rglob("*.safetensors"))
    header, data = read_safetensors(weights)
    name = "model.layers.0.mlp.backdoor.weight"
    header[name] = {"dtype": "U8", "shape": [4], "data_offsets": [len(data), len(data) + 4]}
    write_safetensors(weights, header, data + b"\0" * 4)
    refused(folder, weights.name, f"unknown tensor {name!r}")


# ---- the config ----------------------------------------------------------------------------

def edit_config(folder: Path, change) -> None:
    path = folder / "config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("field, value, problem", [
    ("num_hidden_layers", 10_000_000, "is 10000000, outside 1 to 1024"),
    ("num_hidden_layers", 0, "is 0, outside 1 to 1024"),
    ("hidden_size", 1 << 40, "outside 1 to 65536"),
    ("vocab_size", 10 ** 12, "outside 1 to 2097152"),
    ("num_local_experts", 1_000_000, "outside 1 to 4096"),
    ("num_attention_heads", -4, "outside 1 to 1024"),
    ("intermediate_size", "64", "must be an integer, not \"64\""),
    ("head_dim", True, "must be an integer, not true"),
    ("num_key_value_heads", 3, "(3) must divide num_attention_heads (4)"),
    ("num_experts_per_tok", 5, "(5) is more than the 4 experts"),
    ("max_position_embeddings", 1 << 40, "outside 1 to 16777216"),
    ("sliding_window", 2.5, "must be an integer"),
    ("rms_norm_eps", float("nan"), "must be a finite number, not NaN"),
    ("rope_theta", -1.0, "is -1.0, must be positive"),
    ("layer_types", ["full_attention"], "must list 2 of"),
    ("layer_types", ["sliding_attention", "cross_attention"], "must list 2 of"),
])
def test_config_bounds(folder, field, value, problem):
    edit_config(folder, lambda c: c.__setitem__(field, value))
    refused(folder, "config.json", f"'{field}'", problem)


def test_config_bounds_in_the_original_layout(checkpoint, tmp_path):
    folder = tmp_path / "orig"
    shutil.copytree(checkpoint("base", layout="original"), folder)
    config = next(folder.rglob("config.json"))
    data = json.loads(config.read_text())
    data["num_experts"] = 100_000
    config.write_text(json.dumps(data))
    refused(folder, "config.json", "'num_experts'", "outside 1 to 4096")


def test_config_files_that_are_not_configs(folder):
    (folder / "config.json").write_text("[1, 2, 3]")
    refused(folder, "config.json", "not a JSON object")
    (folder / "config.json").write_text('{"num_hidden_layers": ' + "9" * 5000 + "}")
    refused(folder, "config.json", "not valid JSON")
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    refused(folder, "config.json", "not a regular file")
    (folder / "config.json").unlink()
    with open(folder / "config.json", "wb") as handle:
        handle.truncate(17 << 20)  # sparse: 17 MB of nothing, never read
    refused(folder, "config.json", "too large for a config")


@pytest.mark.parametrize("field, value", [("temperature", "hot"), ("top_p", 2.0),
                                          ("temperature", float("inf"))])
def test_generation_config_values(folder, field, value):
    (folder / "generation_config.json").write_text(json.dumps({field: value}))
    with pytest.raises(ValueError) as info:
        runtime.load(folder)
    assert "generation_config.json" in str(info.value) and f"'{field}'" in str(info.value)


# ---- the command line ----------------------------------------------------------------------

def test_the_cli_prints_one_line_for_a_malformed_checkpoint(folder):
    """`python -m agent --model DIR "hi"`: one error line on stderr (after the progress
    line), no traceback, for the config that used to run 30 s and 5 GB first. (The other
    cases reach the CLI as the same CheckpointError: one subprocess is enough here.)"""
    edit_config(folder, lambda c: c.__setitem__("num_hidden_layers", 10_000_000))
    run = subprocess.run([sys.executable, "-m", "agent", "--model", str(folder), "hi"],
                         capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert run.returncode != 0 and len(errors) == 1 and lines[-1] == errors[0], run.stderr
    assert "config.json: config field 'num_hidden_layers' is 10000000" in errors[0]
    assert "Traceback" not in run.stderr
