"""`python -m agent "task"` and the interactive chat.

    python -m agent "What is 17 * 23?"                 stream the answer
    python -m agent --tools python,browser "..."       with tools (also module:function)
    python -m agent --json "..."                       one JSON object: final, effort, tool_calls, ...
    python -m agent                                    interactive chat (/help for commands)

Exit codes: 0 a result was produced (partial results say why on stderr), 2 bad flags or
unknown tools, 3 the model could not be loaded, 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path

EFFORT_CHOICES = ("auto", "low", "medium", "high")


class UsageError(Exception):
    """Bad flags or tool names: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent", description="Run a gpt-oss agent on a task, or chat.")
    p.add_argument("task", nargs="*", help="the task; omit it for an interactive chat")
    p.add_argument("--model", help="checkpoint folder or name (default: the embedded model); "
                                   "a .json file of recorded completions replays them")
    p.add_argument("--backend", metavar="URL",
                   help="a remote engine instead of the in-process runtime: http://host:port "
                        "(vLLM, SGLang, `python -m agent serve`), llamacpp+URL, ollama+URL, chat+URL; "
                        "--model then names the served model")
    p.add_argument("--effort", default="auto", choices=EFFORT_CHOICES, help="reasoning effort (default: auto)")
    p.add_argument("--tools", default="python",
                   help="comma-separated: browser, python, module:function, file.py:function "
                        "(default: python; '' for none)")
    p.add_argument("--instructions", help="developer instructions (text, or @file)")
    p.add_argument("--max-steps", type=_positive_int, default=12, help="model calls per turn (default 12)")
    p.add_argument("--max-tokens", type=_positive_int, default=8192, help="generated tokens per turn")
    p.add_argument("--max-time", type=float, help="seconds per turn")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--json", action="store_true", help="print one JSON result object instead of streaming")
    p.add_argument("--raw", action="store_true", help="print the whole conversation as Harmony text")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--temperature", type=float,
                   help="sampling temperature (default: the model's recommendation; 1.0 for gpt-oss)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (default: the model's, or 1.0)")
    p.add_argument("--show-reasoning", action="store_true", help="stream the analysis channel to stderr")
    p.add_argument("--no-date", action="store_true", help="leave today's date out of the system message")
    p.add_argument("--no-strict-tools", action="store_true",
                   help="do not constrain tool calls to declared tools and their argument schemas "
                        "(the in-process runtime constrains them by default)")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        agent = make_agent(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        _load_model(agent, quiet=args.json)
    except Exception as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 3
    try:
        if args.task:
            result = run_task(agent, " ".join(args.task), args)
            return 0 if result is not None else 1
        return interactive(agent, args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        agent.close()


# ---- setup --------------------------------------------------------------------------------

def make_agent(args):
    from agent.loop import Agent
    instructions = args.instructions
    if instructions and instructions.startswith("@"):
        try:
            instructions = Path(instructions[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"--instructions {instructions}: {exc.strerror}") from None
    tools = parse_tools(args.tools)
    model = args.model
    if args.backend:
        from agent.backends.remote import RemoteBackend
        model = RemoteBackend(args.backend, model=args.model)
    if args.temperature is not None and args.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, got {args.temperature}")
    try:
        return Agent(model=model, tools=tools, instructions=instructions, effort=args.effort,
                     max_steps=args.max_steps, max_tokens=args.max_tokens, max_time=args.max_time,
                     temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                     device=args.device, date=None if args.no_date else "today",
                     strict_tools=not args.no_strict_tools)
    except (ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from None


def parse_tools(spec: str) -> list:
    """'python,browser,mymod:func,path/to/file.py:func' -> tool specs for the Toolbox."""
    tools = []
    for name in (part.strip() for part in spec.split(",")):
        if not name:
            continue
        if name == "python":
            tools.append(_python_tool())
        elif name == "browser":
            tools.append(name)
        elif ":" in name:
            tools.append(_import_function(name))
        else:
            raise UsageError(f"unknown tool {name!r}: use browser, python, module:function or file.py:function")
    return tools


def _python_tool():
    """The sandboxed python tool. Without bubblewrap the library refuses to run code; the
    command line, a user's own program on their own machine, runs it unsandboxed (resource
    limits only) and says so, unless AGENT_PYTHON_SANDBOX chose explicitly."""
    from agent.tools.python.sandbox import find_bwrap
    if find_bwrap() is not None or os.environ.get("AGENT_PYTHON_SANDBOX"):
        return "python"
    print("warning: bubblewrap (bwrap) not found: the python tool runs code without a sandbox "
          "(resource limits only); `apt-get install bubblewrap` adds one", file=sys.stderr)
    from agent.tools.python.tool import PythonTool
    return PythonTool(sandbox="none")


def _import_function(spec: str):
    where, _, attr = spec.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise UsageError(f"tool {spec!r}: no such file {where}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"tool {spec!r}: cannot import {where}: {exc}") from None
    if not hasattr(module, attr):
        raise UsageError(f"tool {spec!r}: {where} has no attribute {attr!r}")
    return getattr(module, attr)


def _load_model(agent, quiet: bool) -> None:
    """Load the weights now (not at the first token), with a progress line on stderr."""
    from agent.backends.local import resolve_model_path
    from agent.loop import is_recorded_script
    if agent._backend is not None or is_recorded_script(agent.model):
        agent.backend
        return
    path = resolve_model_path(agent.model)
    progress = None if quiet or not sys.stderr.isatty() else _Progress(f"loading {path}")
    agent.progress = progress.update if progress else None
    if progress:
        progress.start()
    elif not quiet:
        print(f"loading {path} ...", file=sys.stderr, flush=True)
    try:
        agent.backend
    finally:
        if progress:
            progress.stop()
    if not quiet:
        print(f"loaded {path.name} in {agent.load_seconds:.1f}s", file=sys.stderr, flush=True)


class _Progress:
    """A one-line progress bar: fraction when the loader reports it, elapsed time always."""

    def __init__(self, label: str):
        self.label, self.fraction, self.note = label, None, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, daemon=True)
        self._started = time.perf_counter()

    def update(self, fraction: float, note: str = "") -> None:
        self.fraction, self.note = fraction, note

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    def _draw(self) -> None:
        while not self._stop.wait(0.2):
            elapsed = time.perf_counter() - self._started
            if self.fraction is None:
                bar = "." * (int(elapsed * 5) % 20 + 1)
                line = f"{self.label} {bar:<20} {elapsed:.1f}s"
            else:
                filled = int(self.fraction * 20)
                line = f"{self.label} [{'#' * filled}{'-' * (20 - filled)}] {self.fraction:.0%} {self.note} {elapsed:.1f}s"
            sys.stderr.write("\r\033[K" + line[:150])
            sys.stderr.flush()


# ---- one task -----------------------------------------------------------------------------

def run_task(agent, task: str, args, session=None):
    runner = session if session is not None else agent
    if args.json:
        result = runner.run(task)
        print(json.dumps(result.to_json_dict(), ensure_ascii=False))
    else:
        result = _stream(runner.stream(task), args)
    if args.raw:
        print(harmony_text(result.messages))
    return result


def _stream(events, args):
    from agent import events as ev
    result, at_line_start = None, True
    out, err = sys.stdout, sys.stderr
    for event in events:
        if isinstance(event, ev.FinalDelta):
            out.write(event.text)
            out.flush()
            at_line_start = event.text.endswith("\n")
        elif isinstance(event, ev.ReasoningDelta) and args.show_reasoning:
            err.write(_dim(event.text))
            err.flush()
        elif isinstance(event, ev.CommentaryDelta):
            err.write(event.text)
        elif isinstance(event, ev.EffortChosen):
            if not at_line_start:           # an earlier attempt's answer is being retried
                out.write("\n")
                out.flush()
                at_line_start = True
            err.write(_dim(f"[effort {event.effort}: {event.reason}]") + "\n")
        elif isinstance(event, ev.ToolCallStarted):
            err.write(f"\n→ {event.recipient}: {_clip(event.input)}\n")
        elif isinstance(event, ev.ToolResultReceived):
            mark = "✗" if event.error else "←"
            err.write(f"{mark} {event.recipient}: {_clip(event.output)}\n")
        elif isinstance(event, ev.ErrorEvent):
            err.write(_dim(f"[problem: {event.message}]") + "\n")
        elif isinstance(event, ev.Done):
            result = event.result
    if not at_line_start:
        out.write("\n")
    if result is not None and not result.ok:
        err.write(f"[stopped: {result.reason}]\n")
    out.flush()
    return result


def harmony_text(messages: list[dict]) -> str:
    from agent.harmony.messages import Conversation
    from agent.harmony.render import render_conversation
    from agent.harmony.tokenizer import get_encoding
    tokens = render_conversation(Conversation.from_dict({"messages": messages}), auto_drop_analysis=False)
    return get_encoding().decode(tokens)


def _clip(text: str, limit: int = 300) -> str:
    text = text.strip().replace("\n", "\n  ")
    return text if len(text) <= limit else text[:limit] + f" … ({len(text)} chars)"


def _dim(text: str) -> str:
    return f"\033[2m{text}\033[0m" if sys.stderr.isatty() else text


# ---- interactive chat ---------------------------------------------------------------------

HELP = """commands:
  /effort auto|low|medium|high   reasoning effort for the next turns
  /tools NAME,NAME               replace the tools (browser, python, module:function)
  /reset                         forget the conversation
  /save FILE                     save the transcript as JSON
  /load FILE                     resume a saved transcript
  /quit                          leave (Ctrl-D works too)"""


def interactive(agent, args) -> int:
    from agent.router import router_for
    from agent.session import TranscriptError
    session = agent.session()
    tty = sys.stdin.isatty()
    if tty:
        print("gpt-oss agent — type a task, /help for commands, Ctrl-D to leave", file=sys.stderr)
    while True:
        try:
            line = input("> " if tty else "")
        except EOFError:
            return 0
        line = line.strip()
        if not line:
            continue
        if not line.startswith("/"):
            run_task(agent, line, args, session=session)
            continue
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if command in ("/quit", "/exit"):
                return 0
            elif command == "/help":
                print(HELP)
            elif command == "/effort":
                if rest not in EFFORT_CHOICES:
                    raise UsageError(f"effort must be one of {', '.join(EFFORT_CHOICES)}")
                agent.router, agent.effort = router_for(rest), rest
                print(f"effort: {rest}")
            elif command == "/tools":
                agent.set_tools(parse_tools(rest))
                print("tools: " + (", ".join(agent.toolset.names()) or "none"))
            elif command == "/reset":
                session.reset()
                print("conversation cleared")
            elif command == "/save":
                if not rest:
                    raise UsageError("/save needs a file name")
                print(f"saved {len(session.messages)} messages to {session.save(rest)}")
            elif command == "/load":
                if not rest:
                    raise UsageError("/load needs a file name")
                session.load(rest)
                print(f"loaded {len(session.messages)} messages from {rest}")
            else:
                raise UsageError(f"unknown command {command}; /help lists them")
        except (UsageError, TranscriptError, ValueError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
