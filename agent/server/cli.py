"""`python -m agent serve`: the OpenAI-compatible server on the in-process runtime.

    python -m agent serve                          # the embedded model on 127.0.0.1:8000
    python -m agent serve --model ~/gpt-oss-20b --port 8001
    python -m agent serve --backend http://gpu-box:8000   # re-serve a remote engine
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EMBEDDED_NAME = "gpt-oss-nano"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent serve",
                                description="OpenAI-compatible server for gpt-oss.")
    p.add_argument("--model", default=None,
                   help="checkpoint folder or name (gpt-oss-20b); default: the embedded model")
    p.add_argument("--backend", default=None,
                   help="serve a remote engine's model instead (URL of vLLM/SGLang/llama.cpp/...)")
    p.add_argument("--served-model-name", dest="name", default=None,
                   help="the model id clients send (default: from --model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-context", type=int, default=None,
                   help="longest prompt + completion in tokens (default: the model's)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="most waiting requests served together when the runtime batches")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--log-level", default="warning")
    return p


def served_name(args) -> str:
    if args.name:
        return args.name
    if args.backend:
        return "remote"
    return Path(args.model).name if args.model else EMBEDDED_NAME


def load_backend(args):
    if args.backend:
        from agent.backends.remote import RemoteBackend
        return RemoteBackend(args.backend)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from agent.backends.local import LocalBackend
    from agent.server.batching import with_batching
    backend = LocalBackend.load(args.model, device=args.device)
    return with_batching(backend) if args.max_batch > 1 else backend


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        backend = load_backend(args)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from agent.server.app import create_app
    app = create_app(backend, served_name(args), max_context=args.max_context,
                     max_batch=args.max_batch)
    print(f"serving {served_name(args)!r} on http://{args.host}:{args.port}/v1 "
          f"(pid {os.getpid()})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
