"""One assistant completion, token by token: typed deltas, finished messages, tool calls.

`TurnDecoder` runs the streaming parser over generated tokens and says what each token
means for whoever shows or acts on it:
- `reasoning`: analysis text (not for the user);
- `commentary`: a preamble addressed to the user on the commentary channel;
- `final`: the answer;
- `call_start` / `call_args` / `call_end`: a message addressed to a tool (`to=functions.f`,
  `to=python`, ...), its arguments as they arrive, and its end.
After the stream: `messages`, `errors` (what the parser repaired), `stop_token`, `calls`,
`final` (the answer, leniently: a message ended by <|return|> without a channel counts) and
`final_logprobs`. The agent loop and the server's endpoints both read it, so "what is a tool
call" and "what is the answer" have one definition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

from . import tokenizer as tk
from .messages import Message, Role
from .parse import ContentDelta, MessageDone, MessageStart, ParseError, StreamParser

NOT_TOOLS = ("assistant", "user", "all")
DeltaKind = Literal["reasoning", "commentary", "final", "call_start", "call_args", "call_end"]


def is_tool_call(message: Message) -> bool:
    """An assistant message addressed to a tool (`to=functions.x`, `to=python`, ...)."""
    return (message.author.role == Role.ASSISTANT and bool(message.recipient)
            and message.recipient not in NOT_TOOLS)


def message_text(message: Message) -> str:
    return "".join(getattr(part, "text", "") for part in message.content)


@dataclass(frozen=True)
class Delta:
    kind: DeltaKind
    text: str = ""
    recipient: Optional[str] = None   # the tool, for call_* deltas
    call: int = -1                    # which call of this completion, for call_* deltas


@dataclass(frozen=True)
class Call:
    """A finished tool call: whom it addresses, its arguments text, its channel."""
    recipient: str
    arguments: str
    channel: Optional[str] = None
    content_type: Optional[str] = None


@dataclass
class TurnDecoder:
    role: Role | str | None = Role.ASSISTANT
    final_logprobs: list = field(default_factory=list)
    generated: int = 0

    def __post_init__(self):
        self.parser = StreamParser(self.role)
        self._kind: Optional[DeltaKind] = None
        self._recipient: Optional[str] = None
        self._calls = 0

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, token: int, logprob: Optional[float] = None) -> list[Delta]:
        self.generated += 1
        deltas = self._deltas(self.parser.process(token))
        if logprob is not None and any(d.kind == "final" for d in deltas):
            self.final_logprobs.append(logprob)
        return deltas

    def prime(self, tokens: Sequence[int]) -> list[Delta]:
        """Tokens written into the prompt on the model's behalf (a forced header)."""
        out: list[Delta] = []
        for token in tokens:
            out += self._deltas(self.parser.process(token))
        return out

    def finish(self) -> list[Delta]:
        return self._deltas(self.parser.finish())

    # -- results ----------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        return list(self.parser.messages)

    @property
    def errors(self) -> list[ParseError]:
        return list(self.parser.errors)

    @property
    def stop_token(self) -> Optional[int]:
        return self.parser.stop_token

    @property
    def done(self) -> bool:
        return self.parser.stop_token is not None

    @property
    def calls(self) -> list[Call]:
        return [Call(m.recipient, message_text(m), m.channel, m.content_type)
                for m in self.parser.messages if is_tool_call(m)]

    @property
    def final(self) -> Optional[str]:
        """The answer: the last final-channel message; leniently, a last message without a
        channel that <|return|> ended (small models forget the header)."""
        messages = self.parser.messages
        finals = [m for m in messages if m.channel == "final" and not is_tool_call(m)]
        if finals:
            return message_text(finals[-1])
        if (messages and self.stop_token == tk.RETURN and messages[-1].channel is None
                and not is_tool_call(messages[-1])):
            return message_text(messages[-1])
        return None

    @property
    def reasoning(self) -> str:
        return "\n".join(message_text(m) for m in self.parser.messages if m.channel == "analysis"
                         and not is_tool_call(m))

    def problem(self) -> str:
        """Why this completion has neither an answer nor a tool call (for the model)."""
        errors = [e.reason for e in self.parser.errors]
        if errors:
            return "; ".join(errors)
        messages = self.parser.messages
        if not messages:
            return "the output contained no complete Harmony message"
        return (f"the output ended after a message on the {messages[-1].channel or 'unnamed'} "
                "channel without a final answer or a tool call")

    # -- parser events -> deltas --------------------------------------------------------------

    def _deltas(self, events) -> list[Delta]:
        out: list[Delta] = []
        for event in events:
            if isinstance(event, MessageStart):
                out += self._start(event)
            elif isinstance(event, ContentDelta) and event.text:
                if self._kind is None:  # text of a message the parser opened leniently
                    self._kind = "final"
                out.append(Delta(self._kind, event.text, self._recipient,
                                 self._calls - 1 if self._kind == "call_args" else -1))
            elif isinstance(event, MessageDone):
                if self._kind == "call_args":
                    out.append(Delta("call_end", "", self._recipient, self._calls - 1))
                self._kind, self._recipient = None, None
        return out

    def _start(self, event: MessageStart) -> list[Delta]:
        if event.role == Role.ASSISTANT and event.recipient and event.recipient not in NOT_TOOLS:
            self._kind, self._recipient = "call_args", event.recipient
            self._calls += 1
            return [Delta("call_start", "", event.recipient, self._calls - 1)]
        self._recipient = None
        self._kind = {"analysis": "reasoning", "commentary": "commentary"}.get(event.channel or "",
                                                                               "final")
        return []
