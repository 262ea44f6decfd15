"""The interactive chat: `python -m agent` without a task.

On a terminal, lines are edited with readline (arrows, Ctrl-R search) and the history is kept
in ~/.cache/gpt-oss-agent/chat_history between chats. Ctrl-C while the agent works cancels
that turn and keeps the conversation as it was before it; Ctrl-C at the prompt clears the
line; Ctrl-D leaves. A message spans several lines between two `\"\"\"` lines, or by ending
lines with a backslash. Piped input is read the same way, without prompts or history.
"""
from __future__ import annotations

import sys
from pathlib import Path

from agent.run import EFFORT_CHOICES, UsageError, parse_tools, run_task

HISTORY_FILE = Path("~/.cache/gpt-oss-agent/chat_history")
HISTORY_LENGTH = 1000
BLOCK = '"""'

HELP = f"""commands:
  /effort auto|low|medium|high   reasoning effort for the next turns (/effort: show it)
  /tools                         show the tools
  /tools NAME,NAME               replace them (browser, python, module:function); /tools none
  /reset                         forget the conversation
  /save FILE                     save the transcript as JSON
  /load FILE                     resume a saved transcript
  /quit                          leave (Ctrl-D works too)
  {BLOCK} ... {BLOCK}                    a message of several lines (or end lines with \\)
  Ctrl-C                         cancel the running turn (the conversation is kept)"""


def interactive(agent, args) -> int:
    session = agent.session()
    tty = sys.stdin.isatty()
    history = History() if tty else None
    if tty:
        print("gpt-oss agent — type a task, /help for commands, Ctrl-D to leave", file=sys.stderr)
    try:
        while True:
            try:
                text = read_message(tty)
            except EOFError:
                return 0
            except KeyboardInterrupt:       # at the prompt: drop the line, ask again
                print(file=sys.stderr)
                continue
            if not text.strip():
                continue
            if text.lstrip().startswith("/"):
                if command(text.strip(), agent, session) == "quit":
                    return 0
                continue
            try:
                run_task(agent, text.strip(), args, session=session)
            except KeyboardInterrupt:
                print(f"[cancelled; the conversation keeps its {len(session.messages)} earlier "
                      "messages]", file=sys.stderr)
    finally:
        if history is not None:
            history.save()


def read_message(tty: bool) -> str:
    """One message: a line, a backslash-continued line, or a \"\"\"-block."""
    prompt, more = ("> ", "... ") if tty else ("", "")
    first = input(prompt)
    if first.strip().startswith(BLOCK):
        lines, rest = [], first.strip()[len(BLOCK):]
        while not rest.rstrip().endswith(BLOCK):
            lines.append(rest)
            rest = input(more)
        lines.append(rest.rstrip()[:-len(BLOCK)])
        return "\n".join(lines).strip("\n")
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(input(more))
    return "\n".join(lines)


def command(line: str, agent, session) -> str | None:
    """Run one /command; errors are one line on stderr. Returns "quit" to leave."""
    from agent.router import router_for
    from agent.session import TranscriptError
    name, _, rest = line.partition(" ")
    rest = rest.strip()
    try:
        if name in ("/quit", "/exit"):
            return "quit"
        elif name == "/help":
            print(HELP)
        elif name == "/effort" and not rest:
            print(f"effort: {agent.effort}")
        elif name == "/effort":
            if rest not in EFFORT_CHOICES:
                raise UsageError(f"effort must be one of {', '.join(EFFORT_CHOICES)}")
            agent.router, agent.effort = router_for(rest), rest
            print(f"effort: {rest}")
        elif name == "/tools":
            if rest:
                agent.set_tools(parse_tools("" if rest == "none" else rest))
            print("tools: " + (", ".join(agent.toolset.recipients()) or "none"))
        elif name == "/reset":
            session.reset()
            print("conversation cleared")
        elif name == "/save":
            if not rest:
                raise UsageError("/save needs a file name")
            print(f"saved {len(session.messages)} messages to {session.save(rest)}")
        elif name == "/load":
            if not rest:
                raise UsageError("/load needs a file name")
            session.load(rest)
            print(f"loaded {len(session.messages)} messages from {rest}")
        else:
            raise UsageError(f"unknown command {name}; /help lists them")
    except (UsageError, TranscriptError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return None


class History:
    """readline line editing for input(), with the history kept in HISTORY_FILE."""

    def __init__(self):
        self.path = HISTORY_FILE.expanduser()
        try:
            import readline
        except ImportError:         # Python built without readline: plain input()
            self.readline = None
            return
        self.readline = readline
        readline.set_history_length(HISTORY_LENGTH)
        try:
            readline.read_history_file(self.path)
        except OSError:
            pass                    # the first chat: no history yet

    def save(self) -> None:
        if self.readline is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(self.path)
        except OSError as exc:
            print(f"warning: cannot save the chat history to {self.path}: {exc}", file=sys.stderr)
