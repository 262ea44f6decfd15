"""`python -m agent download gpt-oss-20b|openai/gpt-oss-120b [--dir D] [--original]`

Fetches the real weights from the Hugging Face Hub (needs network and huggingface_hub) into
the standard Hugging Face cache, where vLLM, transformers and `--model openai/gpt-oss-20b`
all find them (one copy for every tool). `--dir D` downloads into a plain folder instead.
Without --original only the Hugging Face layout is fetched (config.json +
model-*.safetensors, about 13 GB for 20b, 65 GB for 120b); --original fetches only the
original/ folder. Load the result with agent.model.load(PATH).

The cache layout read by `cached_snapshot` is huggingface_hub's:
    $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
      models--openai--gpt-oss-20b/refs/main          the commit hash of the main branch
      models--openai--gpt-oss-20b/snapshots/HASH/    the files of that commit
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MODELS = {"gpt-oss-20b": "openai/gpt-oss-20b", "gpt-oss-120b": "openai/gpt-oss-120b"}
HF_FILES = ["config.json", "generation_config.json", "model*.safetensors",
            "model.safetensors.index.json"]
ORIGINAL_FILES = ["original/*"]
_COMMIT = re.compile(r"[0-9a-f]{40}")


def repo_id(name: str) -> str | None:
    """'gpt-oss-20b' or 'openai/gpt-oss-20b' -> 'openai/gpt-oss-20b'; any 'org/name' is a repo
    id; anything else None."""
    if name in MODELS:
        return MODELS[name]
    parts = name.split("/")
    return name if len(parts) == 2 and all(parts) else None


def hub_cache() -> Path:
    """The Hugging Face cache folder, from the same variables huggingface_hub reads."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def cached_snapshot(repo: str, revision: str = "main") -> Path | None:
    """The cached snapshot folder of `repo` at `revision` (a branch or a commit), or None."""
    folder = hub_cache() / ("models--" + repo.replace("/", "--"))
    ref = folder / "refs" / revision
    if ref.is_file():
        commit = ref.read_text().strip()
    elif _COMMIT.fullmatch(revision):
        commit = revision
    else:
        return None
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def default_dir(name: str) -> Path:
    """Where earlier versions downloaded to (still searched by `find_checkpoint`)."""
    return Path.home() / ".cache" / "gpt-oss-agent" / name


def find_checkpoint(name: str) -> Path | None:
    """A model name or repo id -> its snapshot in the Hugging Face cache, else the folder
    earlier versions downloaded to, else None."""
    repo = repo_id(name)
    snapshot = cached_snapshot(repo) if repo else None
    if snapshot is not None:
        return snapshot
    legacy = default_dir(name.split("/")[-1])
    return legacy if legacy.exists() else None


def download(name: str, folder: Path | None = None, original: bool = False) -> Path:
    """Download one model into the Hugging Face cache (or into `folder`) and return the
    checkpoint folder; raises ConnectionError with a clear message when it cannot."""
    repo = repo_id(name)
    if repo not in MODELS.values():
        raise ValueError(f"unknown model {name!r}: one of {', '.join(sorted(MODELS))}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RuntimeError("huggingface_hub is not installed: pip install huggingface_hub") from None
    where = {"local_dir": str(folder)} if folder is not None else {}
    log.info("downloading %s into %s", repo, folder or hub_cache())
    try:
        path = snapshot_download(repo, allow_patterns=ORIGINAL_FILES if original else HF_FILES, **where)
    except Exception as exc:  # the hub raises many types; all mean "could not fetch"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(
            f"cannot download {repo} from huggingface.co (no network, offline mode or "
            f"hub error: {text}); copy the checkpoint folder here by other means and pass its "
            f"path to --model") from None
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent download",
                                     description="Fetch real gpt-oss weights from the Hugging Face Hub.")
    parser.add_argument("name", choices=sorted(MODELS) + sorted(MODELS.values()),
                        metavar="NAME", help="gpt-oss-20b or gpt-oss-120b (or its repo id openai/...)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="a plain target folder (default: the Hugging Face cache, "
                             f"now {hub_cache()})")
    parser.add_argument("--original", action="store_true",
                        help="fetch the original/ layout instead of the Hugging Face layout")
    args = parser.parse_args(argv)
    try:
        path = download(args.name, args.dir, args.original)
    except (ConnectionError, RuntimeError) as exc:
        print(f"download: {exc}", file=sys.stderr)
        return 1
    print(f"downloaded {repo_id(args.name)} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
