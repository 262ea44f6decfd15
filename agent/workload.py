"""`python -m agent.bench --workload`: one scripted agent task, timed end to end on the
in-process runtime and on a real llama-server, in one command (a benchmark, not a test).

The task is what an agent's turn costs: a system and a developer message declaring fifteen
tools (~1.5k tokens), a user request, then three model steps; between them a tool call and
its result (~800, then ~2,000 tokens of text) are appended. Both engines get the same token
prompts (the steps' own outputs are replaced by fixed calls, so random weights cannot make the
prompts differ), keep their prompt cache between steps (ours: the session cache; llama-server:
`cache_prompt`, driven by this project's llamacpp backend), decode greedily and never stop
early. Reported per step and in all: prefill (time to the first token) and decode time, the
tokens each computed and reused, and the whole task's wall time.

    python -m agent.bench --workload [--checkpoint DIR | --config 20b --layers N]
                          [--decode-tokens 150] [--threads N] [--llama-server PATH]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

WORDS = ("order invoice shipment customer warehouse status delayed express refund ticket "
         "region total amount currency item quantity price report summary note address city "
         "carrier tracking returned pending confirmed cancelled priority account").split()


def filler(tokens: int, seed: int) -> str:
    """Text of exactly `tokens` o200k tokens: a tool result's rows of words and numbers."""
    from agent.harmony.tokenizer import get_encoding
    rng, enc, lines = random.Random(seed), get_encoding(), []
    while len(enc.encode_ordinary("\n".join(lines))) < tokens:
        lines.append(" ".join(rng.choice(WORDS) for _ in range(8)) + f" {rng.randint(1, 99999)}")
    return enc.decode(enc.encode_ordinary("\n".join(lines))[:tokens])


def transcript_prompts(steps_results=(800, 2000)) -> list[list[int]]:
    """The three prompts of the task, each extending the previous one."""
    from agent.harmony.conversation import (developer_message, prompt_messages, render_prompt,
                                            system_message, tool_call_message,
                                            tool_result_message, user_message)
    from agent.harmony.messages import ToolDescription
    tools = [ToolDescription(
        name=f"{verb}_{noun}",
        description=f"{verb.capitalize()} the {noun} records of the company's order system. "
                    "Returns one line per record with its id, status, amounts and dates; "
                    "use the filters to narrow the result, and page through long results.",
        parameters={"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string", "description": f"what to look for in the {noun}"},
            "region": {"type": "string", "enum": ["emea", "amer", "apac"]},
            "since": {"type": "string", "description": "ISO date, inclusive"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            "page": {"type": "integer", "minimum": 1}}})
        for verb in ("search", "list", "summarize")
        for noun in ("orders", "invoices", "shipments", "refunds", "customers")]
    messages = prompt_messages(
        system_message("medium", date=None),
        developer_message("You are the operations assistant. Look things up with the tools "
                          "before answering, and cite record ids.", tools, None),
        [user_message("Which delayed express orders in EMEA this month still have no refund "
                      "ticket, and what do they add up to?")])
    prompts = [render_prompt(messages)]
    for step, size in enumerate(steps_results):
        messages.append(tool_call_message("functions.search_orders",
                                          json.dumps({"query": "delayed express", "region": "emea",
                                                      "page": step + 1})))
        messages.append(tool_result_message("functions.search_orders", filler(size, step)))
        prompts.append(render_prompt(messages))
    return prompts


def run_steps(backend, prompts: list[list[int]], decode_tokens: int) -> dict:
    steps, started = [], time.perf_counter()
    for prompt in prompts:
        begin, first, count = time.perf_counter(), None, 0
        for _ in backend.complete(prompt, max_tokens=decode_tokens, stop=(), temperature=0.0):
            first = first or time.perf_counter()
            count += 1
        end = time.perf_counter()
        usage = dict(getattr(backend, "last_usage", None) or {})
        steps.append({"prompt_tokens": len(prompt), "reused_tokens": usage.get("reused_tokens"),
                      "computed_tokens": usage.get("computed_tokens"), "decoded": count,
                      "prefill_s": round(first - begin, 2), "decode_s": round(end - first, 2)})
        drafts = getattr(getattr(backend, "model", None), "last_drafts", None)
        if drafts is not None:  # prompt-lookup drafts checked and kept (agent.model.lookup)
            steps[-1]["drafts"] = dict(drafts)
        print(json.dumps(steps[-1]), file=sys.stderr)
    total = time.perf_counter() - started
    prefill, decode = sum(s["prefill_s"] for s in steps), sum(s["decode_s"] for s in steps)
    return {"wall_s": round(total, 2), "prefill_s": round(prefill, 2), "decode_s": round(decode, 2),
            "prefill_share": round(prefill / total, 2), "steps": steps}


def ours(checkpoint: Path, prompts, decode_tokens: int, threads: int) -> dict:
    import torch

    from agent.backends.local import LocalBackend
    torch.set_num_threads(threads)
    backend = LocalBackend.load(str(checkpoint))
    for _ in backend.model.generate(prompts[0][:8], max_tokens=1, temperature=0.0):  # set-up
        pass
    backend.model.reset()
    result = run_steps(backend, prompts, decode_tokens)
    del backend
    gc.collect()
    return result


def llama_server(binary: str, gguf: Path, prompts, decode_tokens: int, threads: int) -> dict:
    from agent.backends.remote import RemoteBackend
    from agent.server.loadtest import free_port, wait_ready
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(Path(binary).resolve().parent)}
    proc = subprocess.Popen([binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                             "-t", str(threads), "-c", str(len(prompts[-1]) + decode_tokens + 64),
                             "-np", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, 600, who="llama-server")
        backend = RemoteBackend("llamacpp+" + url, timeout=3600)
        for _ in backend.complete(prompts[0][:8], max_tokens=1, temperature=0.0):
            pass
        return run_steps(backend, prompts, decode_tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str]) -> int:
    from agent.model.benchmark import (cpu_description, default_checkpoint,
                                       find_llama_binary, gguf_for)
    parser = argparse.ArgumentParser(prog="python -m agent.bench --workload",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--workload", action="store_true")
    parser.add_argument("--config", choices=["20b", "120b", "tiny"], default="20b")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--decode-tokens", type=int, default=150)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--llama-server", default=None)
    parser.add_argument("--dense", default=None,
                        help='ours: dense-weight mode ("int8": the bytes of the GGUF\'s Q8_0)')
    args = parser.parse_args(argv)
    if args.dense:
        os.environ["GPT_OSS_AGENT_DENSE"] = args.dense
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint(args.config, args.layers, None)
    binary = str(find_llama_binary("llama-server", args.llama_server,
                                   "GPT_OSS_AGENT_LLAMA_SERVER"))
    prompts = transcript_prompts()
    report = {**cpu_description(), "threads": args.threads, "checkpoint": str(path),
              "command": " ".join(["python -m agent.bench", *argv]), "dense": args.dense,
              "prompt_tokens": [len(p) for p in prompts]}
    report["ours"] = ours(path, prompts, args.decode_tokens, args.threads)
    report["llama.cpp"] = llama_server(binary, gguf_for(path), prompts, args.decode_tokens,
                                       args.threads)
    report["speedup"] = round(report["llama.cpp"]["wall_s"] / report["ours"]["wall_s"], 2)
    print(json.dumps(report, indent=1))
    return 0
