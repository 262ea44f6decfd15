"""`python -m agent "task"`: one-shot runs, and the command line the chat (agent/repl.py) shares.

    python -m agent "What is 17 * 23?"                 stream the answer
    python -m agent --tools python,browser "..."       with tools (also module:function)
    python -m agent --json "..."                       one JSON object: final, effort, tool_calls, ...
    python -m agent                                    interactive chat (agent/repl.py)

Exit codes: EXIT_HELP below (printed by --help); EXIT_CODES maps a run's stop reason to one.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

EFFORT_CHOICES = ("auto", "low", "medium", "high")
FROM_ENVIRONMENT = "$OPENAI_BASE_URL"     # `--backend` given without a URL


EXIT_CODES = {"done": 0, "error": 1, "invalid_output": 1, "max_steps": 4, "max_tokens": 4,
              "timeout": 4}
EXIT_HELP = ("exit codes: 0 a final answer; 1 no final answer (the backend failed, or the answer "
             "failed validation); 2 bad flags or unknown tools; 3 the model could not be loaded; "
             "4 stopped by --max-steps, --max-tokens or --max-time before a final answer; "
             "130 interrupted")


class UsageError(Exception):
    """Bad flags or tool names: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent", description="Run a gpt-oss agent on a task, or chat.",
                                epilog=EXIT_HELP)
    p.add_argument("task", nargs="*", help="the task; omit it for an interactive chat")
    p.add_argument("--model", help="checkpoint folder or name (default: the embedded model); "
                                   "a .json file of recorded completions replays them")
    p.add_argument("--backend", metavar="URL", nargs="?", const=FROM_ENVIRONMENT,
                   help="a remote engine instead of the in-process runtime: http://host:port "
                        "(vLLM, SGLang, `python -m agent serve`), llamacpp+URL, ollama+URL, chat+URL; "
                        "without a URL, $OPENAI_BASE_URL; the API key is $OPENAI_API_KEY "
                        "(or $GPT_OSS_AGENT_API_KEY); --model then names the served model")
    p.add_argument("--effort", default="auto", choices=EFFORT_CHOICES, help="reasoning effort (default: auto)")
    p.add_argument("--tools", default="python",
                   help="comma-separated: browser, python, module:function, file.py:function "
                        "(default: python; '' for none)")
    p.add_argument("--mcp", action="append", default=[], metavar="'COMMAND ARGS' | URL",
                   help="add an MCP server's tools (a command run over stdio, or a streamable "
                        "HTTP URL); repeatable")
    from agent.tools.mcp.client import add_header_flag
    add_header_flag(p)
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
    p.add_argument("--approve", action="store_true",
                   help="ask on the terminal before python code or a function runs; a declined "
                        "call is reported to the model")
    p.add_argument("--trace", metavar="FILE",
                   help="append OpenTelemetry spans (run, attempt, model call, tool call) to FILE "
                        "as JSON lines")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what the library does to stderr (-v info, -vv debug)")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    _log_to_stderr(args.verbose)
    try:
        traces = _trace_provider(args.trace)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, traces)
    finally:
        if traces is not None:
            traces.shutdown()       # flushes the trace file


def _run(args, traces) -> int:
    from agent.tracing import get_tracer
    try:
        agent = make_agent(args, tracer=None if traces is None else get_tracer(traces))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            _load_model(agent, quiet=args.json)
        except Exception as exc:
            print(f"error: cannot load the model: {exc}", file=sys.stderr)
            return 3
        if args.task:
            result = run_task(agent, " ".join(args.task), args)
            return 1 if result is None else EXIT_CODES.get(result.stop_reason, 1)
        from agent.repl import interactive
        return interactive(agent, args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        agent.close()


def _log_to_stderr(verbosity: int) -> None:
    """The library logs under "agent"; without -v only its warnings show."""
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("agent").setLevel(level)


def _trace_provider(path: str | None):
    if path is None:
        return None
    from agent.tracing import json_lines_provider
    try:
        return json_lines_provider(path)
    except OSError as exc:
        raise UsageError(f"--trace {path}: {exc.strerror}") from None


# ---- setup --------------------------------------------------------------------------------

def make_agent(args, tracer=None):
    from agent.loop import Agent
    if args.task and not " ".join(args.task).strip():  # `python -m agent ""`: a slip, not a request
        raise UsageError("the task is empty: give it as text, or no argument for interactive chat")
    instructions = args.instructions
    if instructions and instructions.startswith("@"):
        try:
            instructions = Path(instructions[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"--instructions {instructions}: {exc.strerror}") from None
    tools = parse_tools(args.tools)
    if args.mcp:
        from agent.tools.mcp import MCPServer
        try:
            tools += [MCPServer.from_spec(spec, headers=dict(args.mcp_header))
                      for spec in args.mcp]  # connected by the Agent
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    model = args.model
    if args.backend:
        model = _remote_backend(args.backend, args.model)
    if args.temperature is not None and args.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, got {args.temperature}")
    try:
        return Agent(model=model, tools=tools, instructions=instructions, effort=args.effort,
                     max_steps=args.max_steps, max_tokens=args.max_tokens, max_time=args.max_time,
                     temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                     device=args.device, date=None if args.no_date else "today",
                     strict_tools=not args.no_strict_tools,
                     approve=ask_on_terminal if args.approve else None, tracer=tracer)
    except (ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from None


def _remote_backend(url: str, model: str | None):
    """--backend URL, or $OPENAI_BASE_URL; the key as the openai client finds it."""
    from agent.backends.remote import RemoteBackend
    if url == FROM_ENVIRONMENT:
        url = os.environ.get("OPENAI_BASE_URL", "")
        if not url:
            raise UsageError("--backend without a URL needs OPENAI_BASE_URL in the environment")
    if "://" not in url:
        raise UsageError(f"--backend {url!r} is not a URL (http://host:port, llamacpp+URL, "
                         "ollama+URL, chat+URL); a bare --backend goes after the task or before "
                         "another flag")
    api_key = os.environ.get("GPT_OSS_AGENT_API_KEY") or os.environ.get("OPENAI_API_KEY")
    return RemoteBackend(url, model=model, api_key=api_key)


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


def ask_on_terminal(recipient: str, arguments: str) -> bool | str:
    """--approve: python code and functions run only after a yes on the terminal (the call
    itself was just shown); the browser only reads and is not asked about."""
    if not (recipient == "python" or recipient.startswith("functions.")):
        return True
    try:
        with open("/dev/tty", "w") as asking, open("/dev/tty") as answering:
            asking.write(f"run {recipient}? [y/N] ")
            asking.flush()
            answer = answering.readline().strip().lower()
    except OSError:
        return "there is no terminal to ask the user for approval"
    return True if answer in ("y", "yes") else "the user declined it"


def _python_tool():
    """The sandboxed python tool. Without bubblewrap the library refuses to run code; the
    command line, a user's own program on their own machine, runs it unsandboxed (resource
    limits only) and says so, unless GPT_OSS_AGENT_PYTHON_SANDBOX chose explicitly."""
    from agent.tools.python.sandbox import find_bwrap
    if find_bwrap() is not None or os.environ.get("GPT_OSS_AGENT_PYTHON_SANDBOX"):
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
    from agent.backends import is_recorded_script
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
    """Print a run's events as they come; returns its Result. Ctrl-C closes the run."""
    printer = Printer(show_reasoning=args.show_reasoning)
    with _CtrlC() as ctrl_c:
        try:
            for event in events:
                ctrl_c.check()
                printer.show(event)
        finally:
            events.close()
            printer.end_line()
    return printer.result


class _CtrlC:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered: Python drops one that
    lands inside a finalizer (garbage collection runs them anywhere), and the run must still
    stop, at its next event, without a "Exception ignored" traceback."""

    def __init__(self):
        self.pressed = False
        self.previous = self.previous_hook = None

    def _handler(self, signum, frame):
        self.pressed = True
        raise KeyboardInterrupt

    def _unraisable(self, unraisable) -> None:
        if not (self.pressed and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            self.previous_hook(unraisable)

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
            self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            sys.unraisablehook = self.previous_hook


class Printer:
    """The answer goes to stdout, everything else (tool calls, efforts, problems, reasoning)
    to stderr, and whatever starts a new kind of output starts on its own line even when both
    streams share one terminal.

    Only the last attempt's answer is the answer. On a terminal it streams as it is generated
    and an answer that escalation discards is marked as discarded; when stdout is a pipe or
    a file it receives the final answer alone and discarded attempts are reported on stderr."""

    def __init__(self, show_reasoning: bool = False):
        self.out, self.err = sys.stdout, sys.stderr
        self.live = self.out.isatty()
        self.show_reasoning = show_reasoning
        self.open_line = None       # the stream whose last line is unfinished, if any
        self.answer = ""            # the current attempt's answer so far
        self.result = None

    def show(self, event) -> None:
        from agent import events as ev
        if isinstance(event, ev.FinalDelta):
            self.answer += event.text
            if self.live:
                self.write(self.out, event.text)
        elif isinstance(event, ev.ReasoningDelta):
            if self.show_reasoning:
                self.write(self.err, event.text, dim=True)
        elif isinstance(event, ev.CommentaryDelta):
            self.write(self.err, event.text)
        elif isinstance(event, ev.EffortChosen):
            if event.attempt > 1:
                self.discard(event.attempt - 1)
            self.line(self.err, f"[effort {event.effort}: {event.reason}]", dim=True)
        elif isinstance(event, ev.ToolCallStarted):
            self.line(self.err, f"→ {event.recipient}: {_clip(event.input)}")
        elif isinstance(event, ev.ToolResultReceived):
            self.line(self.err, f"{'✗' if event.error else '←'} {event.recipient}: {_clip(event.output)}")
        elif isinstance(event, ev.ErrorEvent):
            self.line(self.err, f"[problem: {event.message}]", dim=True)
        elif isinstance(event, ev.Done):
            self.result = event.result
            if not self.live and event.result.final:
                self.write(self.out, event.result.final)
            if not event.result.ok:
                self.line(self.err, f"[stopped: {event.result.reason}]")

    def discard(self, attempt: int) -> None:
        """Escalation threw attempt `attempt` away: its answer is not the answer."""
        if self.answer.strip():
            if self.live:
                self.line(self.out, f"[attempt {attempt}'s answer above is discarded; trying again]", dim=True)
            else:
                self.line(self.err, f"[discarded attempt {attempt}: {_clip(self.answer)}]", dim=True)
        self.answer = ""

    def write(self, stream, text: str, dim: bool = False) -> None:
        if not text:
            return
        if self.open_line is not None and self.open_line is not stream:
            self.end_line()
        stream.write(_dim(text, stream) if dim else text)
        stream.flush()
        self.open_line = None if text.endswith("\n") else stream

    def line(self, stream, text: str, dim: bool = False) -> None:
        """`text` on a line of its own."""
        self.end_line()
        self.write(stream, text, dim)
        self.write(stream, "\n")

    def end_line(self) -> None:
        if self.open_line is not None:
            self.open_line.write("\n")
            self.open_line.flush()
            self.open_line = None


def harmony_text(messages: list[dict]) -> str:
    from agent.harmony.messages import Conversation
    from agent.harmony.render import render_conversation
    from agent.harmony.tokenizer import get_encoding
    tokens = render_conversation(Conversation.from_dict({"messages": messages}), auto_drop_analysis=False)
    return get_encoding().decode(tokens)


def _clip(text: str, limit: int = 300) -> str:
    text = text.strip().replace("\n", "\n  ")
    return text if len(text) <= limit else text[:limit] + f" … ({len(text)} chars)"


def _dim(text: str, stream=None) -> str:
    return f"\033[2m{text}\033[0m" if (stream or sys.stderr).isatty() else text
