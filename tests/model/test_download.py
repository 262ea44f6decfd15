"""Model names and Hugging Face repo ids find checkpoints in the standard Hugging Face cache.

The cache is built by hand the way huggingface_hub lays it out (blobs/, snapshots/HASH/ with
links into blobs, refs/main), with a random tiny checkpoint; huggingface_hub itself, run
offline on the same folder, is the oracle for which snapshot a repo id means.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.backends.local import ModelNotFound, resolve_model_path
from agent.model.config import preset
from agent.model.random import write_random

ROOT = Path(__file__).resolve().parents[2]
MAIN = "a" * 40     # the commit refs/main names
OLDER = "b" * 40    # an older snapshot also in the cache


def fake_hub_cache(hf_home: Path, checkpoint: Path, repo: str = "openai/gpt-oss-20b") -> Path:
    """hf_home/hub/models--ORG--NAME as huggingface_hub writes it; returns the main snapshot."""
    folder = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True)
    for commit in (OLDER, MAIN):
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for file in checkpoint.iterdir():
            blob = folder / "blobs" / f"{commit[:8]}-{file.name}"
            blob.write_bytes(file.read_bytes())
            (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(MAIN)
    return folder / "snapshots" / MAIN


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random 2-layer gpt-oss with the real Harmony vocabulary (the CLI renders real prompts)."""
    folder = tmp_path_factory.mktemp("tiny")
    write_random(folder, preset("tiny", vocab_size=201088, eos_token_id=200002, pad_token_id=199999))
    return folder


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "hf"
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))      # no old-style download folder either
    return home


def hub_oracle(hf_home: Path, repo: str) -> str:
    """The snapshot huggingface_hub resolves for `repo`, offline, in a fresh process (it reads
    HF_HOME when it is imported)."""
    code = ("import sys; from huggingface_hub import snapshot_download; "
            "print(snapshot_download(sys.argv[1], local_files_only=True))")
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, repo], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_repo_id_and_name_find_the_snapshot_huggingface_hub_finds(hf_home, checkpoint):
    pytest.importorskip("huggingface_hub")
    snapshot = fake_hub_cache(hf_home, checkpoint)
    assert Path(hub_oracle(hf_home, "openai/gpt-oss-20b")) == snapshot
    assert resolve_model_path("openai/gpt-oss-20b") == snapshot
    assert resolve_model_path("gpt-oss-20b") == snapshot
    (snapshot.parents[1] / "refs" / "main").write_text(OLDER)      # main moved back a commit
    assert resolve_model_path("openai/gpt-oss-20b") == Path(hub_oracle(hf_home, "openai/gpt-oss-20b"))
    assert resolve_model_path("openai/gpt-oss-20b").name == OLDER


def test_hf_hub_cache_variable_wins_over_hf_home(hf_home, checkpoint, tmp_path, monkeypatch):
    snapshot = fake_hub_cache(tmp_path / "elsewhere", checkpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere" / "hub"))
    assert resolve_model_path("openai/gpt-oss-20b") == snapshot


def test_runtime_loads_a_repo_id_from_the_cache(hf_home, checkpoint):
    from agent.model import load
    fake_hub_cache(hf_home, checkpoint)
    model = load("openai/gpt-oss-20b")
    expected = json.loads((checkpoint / "config.json").read_text())
    assert model.config.num_hidden_layers == expected["num_hidden_layers"]
    assert model.config.vocab_size == 201088


def test_missing_model_names_the_cache_and_the_download_command(hf_home):
    with pytest.raises(ModelNotFound) as caught:
        resolve_model_path("openai/gpt-oss-20b")
    message = str(caught.value)
    assert str(hf_home / "hub") in message and "python -m agent download gpt-oss-20b" in message
    hf_home.joinpath("hub", "models--openai--gpt-oss-20b", "snapshots").mkdir(parents=True)
    with pytest.raises(ModelNotFound):   # a cache entry without refs/main is no snapshot
        resolve_model_path("openai/gpt-oss-20b")


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=180, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def test_cli_model_flag_runs_the_cached_snapshot(hf_home, checkpoint):
    snapshot = fake_hub_cache(hf_home, checkpoint)
    out = run_cli("--model", "openai/gpt-oss-20b", "--tools", "", "--max-steps", "1",
                  "--max-tokens", "4", "hi", env={"HF_HOME": str(hf_home)})
    assert out.returncode == 4, out.stderr[-2000:]           # stopped by a limit
    assert f"loading {snapshot} ..." in out.stderr and f"loaded {MAIN} in" in out.stderr
    assert "[stopped: reached max_steps=1" in out.stderr     # the random model really ran


def test_cli_says_where_it_looked_when_the_model_is_missing(hf_home):
    out = run_cli("--model", "openai/gpt-oss-20b", "--json", "hi", env={"HF_HOME": str(hf_home)})
    assert out.returncode == 3
    assert "Hugging Face cache" in out.stderr and "python -m agent download gpt-oss-20b" in out.stderr


def test_download_targets_the_hugging_face_cache_by_default(hf_home, checkpoint):
    pytest.importorskip("huggingface_hub")
    snapshot = fake_hub_cache(hf_home, checkpoint)
    # Offline, huggingface_hub answers from the cache: the default target is the HF cache.
    out = run_cli("download", "openai/gpt-oss-20b", env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"downloaded openai/gpt-oss-20b to {snapshot}"
    empty = hf_home.parent / "empty"
    out = run_cli("download", "gpt-oss-120b", env={"HF_HOME": str(empty), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 1
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("download: cannot download openai/gpt-oss-120b") and "offline" in line
