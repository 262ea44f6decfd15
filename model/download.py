"""`python -m agent download gpt-oss-20b|gpt-oss-120b [--dir D] [--original]`

Fetches the real weights from the Hugging Face Hub (needs network and huggingface_hub). Without
--original only the Hugging Face layout is fetched (config.json + model-*.safetensors, about
13 GB for 20b, 65 GB for 120b); --original fetches only the original/ folder instead.
Load the result with agent.model.load(D).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODELS = {"gpt-oss-20b": "openai/gpt-oss-20b", "gpt-oss-120b": "openai/gpt-oss-120b"}
HF_FILES = ["config.json", "generation_config.json", "model*.safetensors",
            "model.safetensors.index.json"]
ORIGINAL_FILES = ["original/*"]


def default_dir(name: str) -> Path:
    return Path.home() / ".cache" / "gpt-oss-agent" / name


def download(name: str, folder: Path, original: bool = False) -> Path:
    """Download one model into folder; raises ConnectionError with a clear message offline."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RuntimeError("huggingface_hub is not installed: pip install huggingface_hub") from None
    try:
        snapshot_download(MODELS[name], local_dir=str(folder),
                          allow_patterns=ORIGINAL_FILES if original else HF_FILES)
    except Exception as exc:  # the hub raises many types; all mean "could not fetch"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(
            f"cannot download {MODELS[name]} from huggingface.co (no network, offline mode or "
            f"hub error: {text}); copy the checkpoint folder here by other means and pass its "
            f"path to agent.model.load") from None
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent download",
                                     description="Fetch real gpt-oss weights from the Hugging Face Hub.")
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("--dir", type=Path, default=None,
                        help="target folder (default ~/.cache/gpt-oss-agent/NAME)")
    parser.add_argument("--original", action="store_true",
                        help="fetch the original/ layout instead of the Hugging Face layout")
    args = parser.parse_args(argv)
    folder = args.dir or default_dir(args.name)
    try:
        download(args.name, folder, args.original)
    except (ConnectionError, RuntimeError) as exc:
        print(f"download: {exc}", file=sys.stderr)
        return 1
    print(f"downloaded {args.name} to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
