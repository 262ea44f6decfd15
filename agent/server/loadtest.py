"""A bounded loopback load test: N concurrent streamed chat requests against the server.

    python -m agent.server.loadtest                       # starts `serve` on the embedded model
    python -m agent.server.loadtest --model DIR --max-batch 1
    python -m agent.server.loadtest --url http://127.0.0.1:8000

Every stream is checked (one id, the assistant role first, a finish_reason, usage, `[DONE]`
last); the run fails if any request is lost or malformed. Prints throughput and latency
percentiles (whole request and time to first token) as a Markdown row and as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlparse

import httpx

from agent.harmony.tokenizer import get_encoding

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def check_stream(events: list, raw: bool = False) -> tuple[str | None, int]:
    """(problem or None, completion tokens) for one stream's decoded events."""
    if not events or events[-1] != "[DONE]":
        return "stream did not end with [DONE]", 0
    chunks = events[:-1]
    if any("error" in c for c in chunks):
        return f"error event: {next(c for c in chunks if 'error' in c)['error']}", 0
    if len({c.get("id") for c in chunks}) != 1:
        return "chunks carry different ids", 0
    with_choices = [c for c in chunks if c.get("choices")]
    if not with_choices:
        return "no choices", 0
    if not raw and with_choices[0]["choices"][0]["delta"].get("role") != "assistant":
        return "first chunk is not the assistant role", 0
    if with_choices[-1]["choices"][0].get("finish_reason") is None:
        return "no finish_reason", 0
    usage = [c["usage"] for c in chunks if c.get("usage")]
    if not usage:
        return "no usage chunk", 0
    return None, int(usage[-1]["completion_tokens"])


async def one_request(client: httpx.AsyncClient, model: str, index: int, max_tokens: int,
                      raw: bool) -> dict:
    body = {"model": model, "stream": True, "max_tokens": max_tokens,
            "stream_options": {"include_usage": True}}
    question = f"Request {index}: what is {index} + 1?"
    if raw:
        # a rendered Harmony prompt; every generated token streams back as one chunk
        body["prompt"] = list(get_encoding().encode(
            f"<|start|>user<|message|>{question}<|end|><|start|>assistant", allowed_special="all"))
        body["ignore_eos"] = True  # a fixed amount of work per request
    else:
        body["messages"] = [{"role": "user", "content": question}]
    started = time.perf_counter()
    first = None
    events: list = []
    try:
        path = "/v1/completions" if raw else "/v1/chat/completions"
        async with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return {"problem": f"HTTP {response.status_code}: {response.text[:200]}"}
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                events.append(payload if payload == "[DONE]" else json.loads(payload))
                if first is None and len(events) > (0 if raw else 1):  # after the role chunk
                    first = time.perf_counter() - started
    except httpx.HTTPError as exc:
        return {"problem": f"{type(exc).__name__}: {exc}"}
    problem, tokens = check_stream(events, raw)
    return {"problem": problem, "tokens": tokens, "latency": time.perf_counter() - started,
            "ttft": first if first is not None else time.perf_counter() - started}


async def run_load(url: str, model: str, requests: int, concurrency: int, max_tokens: int,
                   timeout: float, raw: bool = False) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def gated(i):
            async with gate:
                return await one_request(client, model, i, max_tokens, raw)
        started = time.perf_counter()
        results = await asyncio.gather(*(gated(i) for i in range(requests)))
        wall = time.perf_counter() - started
        health = (await client.get("/health")).json()
    ok = [r for r in results if r.get("problem") is None]
    latencies, ttfts = [r["latency"] for r in ok], [r["ttft"] for r in ok]
    tokens = sum(r["tokens"] for r in ok)
    return {
        "endpoint": "completions" if raw else "chat", "requests": requests, "concurrency": concurrency, "max_tokens": max_tokens,
        "completed": len(ok), "failed": [r["problem"] for r in results if r.get("problem")],
        "wall_s": round(wall, 2), "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1), "requests_per_s": round(len(ok) / wall, 2),
        "latency_p50_s": round(percentile(latencies, 50), 2),
        "latency_p99_s": round(percentile(latencies, 99), 2),
        "ttft_p50_s": round(percentile(ttfts, 50), 2), "ttft_p99_s": round(percentile(ttfts, 99), 2),
        "mean_tokens": round(statistics.mean(r["tokens"] for r in ok), 1) if ok else 0,
        "server_batches": health.get("batches"),
    }


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "agent", "serve", "--port", str(port), "--served-model-name",
           "load", "--max-batch", str(args.max_batch)]
    if args.model:
        cmd += ["--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server this process starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None, seconds: float = 300,
               who: str = "loadtest") -> None:
    """Until GET url/health answers 200; SystemExit (naming `who`) if the server process `proc`
    exits first (with its stderr when piped) or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            detail = proc.stderr.read().strip() if proc.stderr else f"exit code {proc.returncode}"
            raise SystemExit(f"{who}: server exited: {detail}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{who}: {url} not ready after {seconds:.0f}s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.server.loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--url", help="a running server (loopback only); default: start one")
    p.add_argument("--model", help="checkpoint for the started server (default: embedded model)")
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--timeout", type=float, default=900, help="per request, seconds")
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat",
                   help="chat: /v1/chat/completions; completions: raw Harmony tokens (every "
                        "token is a chunk, so time-to-first-token shows even for gibberish)")
    args = p.parse_args(argv)
    proc = None
    if args.url:
        url = args.url.rstrip("/").removesuffix("/v1")
        if urlparse(url).hostname not in LOOPBACK:
            print("loadtest: loopback servers only (127.0.0.1/localhost)", file=sys.stderr)
            return 2
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(args, port)
    try:
        wait_ready(url, proc)
        model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        report = asyncio.run(run_load(url, model, args.requests, args.concurrency,
                                      args.max_tokens, args.timeout,
                                      raw=args.endpoint == "completions"))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    report["model"] = args.model or ("embedded" if proc else model)
    report["max_batch"] = args.max_batch if proc else None
    report["cpu_threads"] = args.threads or os.cpu_count()
    print(json.dumps(report, indent=2))
    print(f"| {report['model']} | {args.endpoint} | {args.requests} x {args.max_tokens} tok, {args.concurrency} "
          f"concurrent | max_batch {report['max_batch']} | {report['completed']}/{args.requests} | "
          f"{report['tokens_per_s']} tok/s | {report['latency_p50_s']} / {report['latency_p99_s']} s "
          f"| {report['ttft_p50_s']} / {report['ttft_p99_s']} s |")
    return 0 if not report["failed"] and report["completed"] == args.requests else 1


if __name__ == "__main__":
    raise SystemExit(main())
