"""`python -m agent serve`: the OpenAI-compatible server on the in-process runtime.

    python -m agent serve                          # the embedded model on 127.0.0.1:8000
    python -m agent serve --model ~/gpt-oss-20b --port 8001
    python -m agent serve --backend http://gpu-box:8000   # re-serve a remote engine
    GPT_OSS_AGENT_SERVER_API_KEY=KEY python -m agent serve   # clients send Bearer KEY

Exit codes: 0 after a clean shutdown, 2 bad flags or an address that cannot be bound (in use),
3 a model that cannot be loaded; each failure is one line on stderr.
"""
from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path

from agent.server.auth import API_KEY_ENV
from agent.server.limits import BODY_SECONDS, HEADER_SECONDS, MAX_BODY_BYTES
from agent.server.sse import KEEP_ALIVE_SECONDS

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
    p.add_argument("--port", type=_port, default=8000, help="0 picks a free one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-context", type=int, default=None,
                   help="longest prompt + completion in tokens (default: the model's)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="most waiting requests served together when the runtime batches")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--mcp", action="append", default=[], metavar="LABEL=COMMAND|URL",
                   help="an MCP server whose tools /v1/responses offers as {\"type\": \"mcp\", "
                        "\"server_label\": LABEL} (repeatable; a URL for streamable HTTP)")
    from agent.tools.mcp.client import add_header_flag
    add_header_flag(p)
    p.add_argument("--log-level", default="warning")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV) or None,
                   help=f"require 'Authorization: Bearer KEY' on every endpoint but /health; "
                        f"KEY1,KEY2,... are separate clients, whose cached prompt prefixes are "
                        f"never shared (default: ${API_KEY_ENV}; the variable keeps it out "
                        f"of `ps`)")
    p.add_argument("--max-body-bytes", type=_positive(int), default=MAX_BODY_BYTES,
                   help=f"largest request body, else 413 (default {MAX_BODY_BYTES})")
    p.add_argument("--body-timeout", type=_positive(float), default=BODY_SECONDS,
                   help=f"seconds a request body may take to arrive, else 408 "
                        f"(default {BODY_SECONDS:g})")
    p.add_argument("--header-timeout", type=_positive(float), default=HEADER_SECONDS,
                   help=f"seconds the request line and headers may take, else the connection "
                        f"is closed (default {HEADER_SECONDS:g})")
    p.add_argument("--keep-alive", type=_positive(float, zero=True), default=KEEP_ALIVE_SECONDS,
                   help=f"seconds of silence after which an event stream gets a "
                        f"': keep-alive' comment; 0 for none (default {KEEP_ALIVE_SECONDS:g})")
    return p


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def _positive(kind, zero: bool = False):
    def parse(text: str):
        value = kind(text)
        if not (value >= 0 if zero else value > 0) or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"must be finite and {'>=' if zero else '>'} 0, got {text}")
        return value
    return parse


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


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads: a taken port fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def server(app, *, header_timeout: float = HEADER_SECONDS, log_level: str = "warning"):
    """The uvicorn server `serve` runs: h11 with the header deadline (limits.timed_h11)."""
    import uvicorn

    from agent.server.limits import timed_h11
    config = uvicorn.Config(app, http=timed_h11(header_timeout), log_level=log_level,
                            lifespan="on")
    return uvicorn.Server(config)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        why = ("is already in use" if exc.errno == errno.EADDRINUSE
               else f"cannot be bound: {exc.strerror or exc}")
        print(f"serve: address {args.host}:{args.port} {why}", file=sys.stderr)
        return 2
    with sock:
        try:
            backend = load_backend(args)
        except Exception as exc:  # the CLI's one line for any broken model folder
            print(f"error: cannot load the model: {_one_line(exc)}", file=sys.stderr)
            return 3
        from agent.server import mcp_tools
        try:
            mcp_servers = mcp_tools.connect(args.mcp, headers=dict(args.mcp_header))
        except Exception as exc:
            print(f"error: cannot start an MCP server: {_one_line(exc)}", file=sys.stderr)
            return 3
        from agent.server.app import create_app
        app = create_app(backend, served_name(args), max_context=args.max_context,
                         max_batch=args.max_batch, api_key=args.api_key,
                         max_body_bytes=args.max_body_bytes, body_seconds=args.body_timeout,
                         keep_alive_seconds=args.keep_alive, mcp_servers=mcp_servers)
        port = sock.getsockname()[1]
        print(f"serving {served_name(args)!r} on http://{args.host}:{port}/v1 "
              f"(pid {os.getpid()}{', API key required' if args.api_key else ''}"
              f"{', MCP: ' + ', '.join(mcp_servers) if mcp_servers else ''})",
              file=sys.stderr, flush=True)
        try:
            server(app, header_timeout=args.header_timeout, log_level=args.log_level).run(
                sockets=[sock])
        finally:
            mcp_tools.close(mcp_servers)
    return 0
