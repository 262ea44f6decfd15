"""Streaming, lenient parser for Harmony completions (token ids in, messages out).

Feed one token at a time; each call returns events: `MessageStart` when a header is complete,
`ContentDelta` for decoded text (UTF-8 safe across tokens), `MessageDone` with the finished
`Message`, `ParseError` for anything malformed. Parsing stops at `<|return|>` / `<|call|>`.

On well-formed completions the messages equal openai-harmony's
`parse_messages_from_completion_tokens`. Malformed output never raises: the parser keeps a
best-effort message and records why, so the agent loop can tell the model. Failures seen in
the wild (vLLM, Ollama and openai/harmony issue trackers) that it repairs:
- `<|channel|>`, `<|constrain|>` or `<|message|>` written as plain-text tokens;
- a channel name without `<|channel|>` (`commentary to=functions.f`);
- two channel markers, giving recipients such as `assistant<|channel|>analysis`;
- a duplicated `to=` (`to=functions.f to=functions.f`, `to=to=functions.f`);
- a missing `<|start|>assistant` before `<|channel|>`, `<|start|>` inside a message, stray
  tokens between messages, tokens after `<|call|>` / `<|return|>`;
- truncation (max_tokens) inside a header or a message, `<|endoftext|>` ending the stream;
- a tool-call body that is not valid JSON (recorded; the text is kept as written).

No special-token text ever reaches a message body (so no delta, answer or tool input shows
one). Inside a body, a special token, or one spelled out in plain text (`<|name|>`):
- `<|start|>` or `<|channel|>` starts a new message: the body so far is closed as a message
  of its own and the marker begins the next header (`<|channel|>` implies
  `<|start|>assistant`), so `Hi<|channel|>analysis<|message|>x` is two messages;
- `<|end|>`, `<|return|>`, `<|call|>` as plain text, `<|message|>`, `<|constrain|>` and any
  other special token are dropped.
Each repair is reported as a ParseError of kind "token".
"""
from __future__ import annotations

import codecs
import json
import operator
import re
from dataclasses import dataclass, field
from typing import Optional, Union

from . import tokenizer as tk
from .messages import Author, Message, Role, TextContent

CHANNEL_MARKER = "<|channel|>"
CONSTRAIN_MARKER = "<|constrain|>"
MESSAGE_MARKER = "<|message|>"
KNOWN_CHANNELS = ("analysis", "commentary", "final")
JSON_NAMESPACES = ("functions.", "browser.")
_ASCII_SPACE = re.compile(r"[ \t\n\x0c\r]+")
_TOKEN_NAMES = {v: k for k, v in tk.NAMED_SPECIAL_TOKENS.items()}
_SPELLED = re.compile(r"<\|([a-z0-9_]*)(\|>)?")  # a special token written as text (or its start)
_LONGEST_NAME = 24
_MARKER = re.compile(r"<\|[a-z0-9_]*\|>")
_NEW_MESSAGE = {tk.START, tk.CHANNEL}


# --- events --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageStart:
    role: Role
    channel: Optional[str]
    recipient: Optional[str]
    content_type: Optional[str]
    name: Optional[str] = None  # author name (a tool message's `functions.x`)


@dataclass(frozen=True)
class ContentDelta:
    text: str
    channel: Optional[str]
    recipient: Optional[str]


@dataclass(frozen=True)
class MessageDone:
    message: Message


@dataclass(frozen=True)
class ParseError:
    reason: str
    kind: str = "format"  # header | stray | truncated | after_stop | json | token | format


Event = Union[MessageStart, ContentDelta, MessageDone, ParseError]


@dataclass
class ParseResult:
    messages: list[Message]
    errors: list[ParseError]
    stop_token: Optional[int] = None


# --- header parsing --------------------------------------------------------------------------

@dataclass
class Header:
    author: Author
    channel: Optional[str] = None
    recipient: Optional[str] = None
    content_type: Optional[str] = None
    problems: list[str] = field(default_factory=list)


def _take_channel(text: str, problems: list[str]) -> tuple[Optional[str], str]:
    """Cut `<|channel|>NAME` out of the header; later markers are dropped with a problem."""
    channel = None
    while CHANNEL_MARKER in text:
        idx = text.index(CHANNEL_MARKER)
        after = text[idx + len(CHANNEL_MARKER):]
        end = next((i for i, c in enumerate(after) if c.isspace() or c == "<"), len(after))
        value = after[:end]
        text = text[:idx] + after[end:]
        if not value:
            problems.append("header has <|channel|> without a channel name")
        elif value.startswith("to="):  # the recipient was written in the channel part
            problems.append(f"recipient {value!r} written after <|channel|>")
            text = f"{text} {value}"
        elif channel is None:
            channel = value
        elif value != channel:
            problems.append(f"header names two channels ({channel!r}, {value!r}); kept the first")
        else:
            problems.append(f"header repeats <|channel|>{value}")
    return channel, text


def _strip_to(part: str) -> str:
    while part.startswith("to="):
        part = part[3:]
    return part


def _clean_recipient(recipient: str, role: Role, channel: Optional[str],
                     content_type: Optional[str], problems: list[str]):
    """Repairs for recipients openai-harmony would keep as written: `to=to=x`, `to=`,
    `x<|end|>`, a bare channel word, an assistant writing to itself."""
    if recipient.startswith("to="):
        problems.append(f"duplicated to= in recipient {recipient!r}")
        recipient = _strip_to(recipient)
    if "<|" in recipient:
        problems.append(f"special-token text in recipient {recipient!r}")
        recipient = recipient[:recipient.index("<|")]
    if not recipient:
        problems.append("header has an empty recipient")
        return None, channel
    if recipient in KNOWN_CHANNELS and channel is None and content_type is None:
        problems.append(f"channel {recipient!r} written without <|channel|>")
        return None, recipient
    if recipient == role.value == Role.ASSISTANT.value:
        problems.append("assistant message addressed to assistant; recipient dropped")
        return None, channel
    return recipient, channel


def parse_header(text: str, role: Optional[Role], default_role: Role = Role.ASSISTANT) -> Header:
    """Header text (between `<|start|>` and `<|message|>`) -> author, channel, recipient, type.

    The first steps are openai-harmony's; whatever it would reject is repaired instead and
    noted in `Header.problems`.
    """
    problems: list[str] = []
    channel, text = _take_channel(text, problems)
    text = text.strip()
    if CONSTRAIN_MARKER in text:
        text = text.replace(CONSTRAIN_MARKER, " " + CONSTRAIN_MARKER).strip()
    parts = [p for p in _ASCII_SPACE.split(text) if p]

    name = None
    if role is None:
        first = parts[0] if parts else None
        if first in {r.value for r in Role}:
            role = Role(first)
        elif first is None or first.startswith("to="):
            problems.append(f"header has no role; assumed {default_role.value}")
            role = default_role
        else:
            # openai-harmony: an unknown first word is a tool's name (`functions.x to=...`)
            name, role = parts.pop(0), Role.TOOL
            if not parts:
                problems.append(f"unknown role {name!r}; read as a tool name")
        if role == Role.TOOL and name is None:
            name = first  # as openai-harmony: a `tool` author is named by its header word
    if parts and parts[0] == role.value:
        parts.pop(0)

    recipient = content_type = None
    if parts:
        count = len(parts)
        last = parts.pop()
        if last.startswith("to="):
            recipient = last[3:]
        elif count == 1:
            recipient = last
        else:
            content_type = last
            raw = parts.pop()
            recipient = raw[3:] if raw.startswith("to=") else raw
    # `parts` now holds what openai-harmony would reject as unexpected header text.
    for extra in parts:
        if extra.startswith("to="):
            if recipient is not None and _strip_to(extra) == _strip_to(recipient):
                problems.append(f"header repeats {extra}")
            elif recipient in KNOWN_CHANNELS and channel is None:
                problems.append(f"channel {recipient!r} written without <|channel|>")
                channel, recipient = recipient, extra[3:]
            else:
                problems.append(f"header has a second recipient {extra!r}; kept {recipient!r}")
        elif extra in KNOWN_CHANNELS and channel is None:
            problems.append(f"channel {extra!r} written without <|channel|>")
            channel = extra
        elif extra.startswith(CONSTRAIN_MARKER) and content_type is None:
            content_type = extra
        else:
            problems.append(f"unknown header text {extra!r} ignored")
    if recipient is not None:
        recipient, channel = _clean_recipient(recipient, role, channel, content_type, problems)
    if role == Role.ASSISTANT and channel is None:
        problems.append("assistant message has no channel")
    return Header(Author(role=role, name=name), channel, recipient, content_type, problems)


# --- the streaming parser ----------------------------------------------------------------------

EXPECT_START, HEADER, CONTENT, STOPPED = "expect_start", "header", "content", "stopped"


class StreamParser:
    """Token-at-a-time Harmony parser. `role` is the role already rendered in the prompt
    (`<|start|>assistant`); pass None when the stream starts with `<|start|>`."""

    def __init__(self, role: Role | str | None = Role.ASSISTANT):
        self.role = Role(role) if role is not None else None
        self.messages: list[Message] = []
        self.errors: list[ParseError] = []
        self.stop_token: Optional[int] = None
        self.tokens: list[int] = []
        self.state = HEADER if self.role is not None else EXPECT_START
        self._next_role = self.role
        self._header_tokens: list[int] = []
        self._stray: list[int] = []
        self._header: Optional[Header] = None
        self._text: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""  # body text that may be the start of a spelled-out special token
        self._shown = ""  # the end of the body text emitted so far

    # -- public ---------------------------------------------------------------------------

    @property
    def current_header(self) -> Optional[Header]:
        return self._header if self.state == CONTENT else None

    @property
    def header_in_progress(self) -> Optional[tuple[Optional[Role], list[int]]]:
        """While a header is being read: (its role if already known, else None: the header
        names it; its tokens so far)."""
        return (self._next_role, list(self._header_tokens)) if self.state == HEADER else None

    @property
    def current_text(self) -> str:
        return "".join(self._text) if self.state == CONTENT else ""

    def process(self, token: int) -> list[Event]:
        events: list[Event] = []
        try:
            token = operator.index(token)  # ints from numpy / torch scalars too
        except TypeError:
            pass
        self.tokens.append(token)
        if not isinstance(token, int) or not 0 <= token < tk.VOCAB_SIZE:
            return self._error(events, f"token id {token!r} is outside the vocabulary", "token")
        if self.state == STOPPED:
            if len(self.tokens) == self._stopped_at + 1:
                self._error(events, f"text after {_TOKEN_NAMES[self._stopped_by]} ignored",
                            "after_stop")
            return events
        if token == tk.ENDOFTEXT:  # some models end the whole stream with it
            self._end_of_text(events)
            return events
        self._handle(token, events)
        return events

    def _handle(self, token: int, events: list[Event]) -> None:
        """One token in the current state (STOPPED takes none)."""
        handler = {EXPECT_START: self._expect_start, HEADER: self._in_header,
                   CONTENT: self._in_content}.get(self.state)
        if handler is not None:
            handler(token, events)

    def process_all(self, tokens) -> list[Event]:
        events: list[Event] = []
        for token in tokens:
            events += self.process(token)
        return events

    def finish(self) -> list[Event]:
        """End of stream (stop token seen, or cut off by max_tokens)."""
        events: list[Event] = []
        if self.state == EXPECT_START:
            self._flush_stray(events)
        elif self.state == HEADER:
            self._error(events, "completion ended inside a message header" if self.tokens
                        else "empty completion", "truncated")
            if self._header_tokens:
                self._malformed_header(events)
        elif self.state == CONTENT:
            self._error(events, "completion ended before the message was closed "
                                "(no <|end|>, <|return|> or <|call|>)", "truncated")
            self._close_message(events)
        if self.state != STOPPED:
            self.state = EXPECT_START
        return events

    def result(self) -> ParseResult:
        return ParseResult(list(self.messages), list(self.errors), self.stop_token)

    # -- states ---------------------------------------------------------------------------

    def _expect_start(self, token: int, events: list[Event]) -> None:
        if token == tk.START:
            self._flush_stray(events)
            self._begin_header(None)
        elif token in (tk.CHANNEL, tk.MESSAGE, tk.CONSTRAIN):
            self._flush_stray(events)
            role = self.role or Role.ASSISTANT
            self._error(events, f"{_TOKEN_NAMES[token]} without <|start|>; assumed "
                                f"<|start|>{role.value}", "stray")
            self._begin_header(role)
            self._in_header(token, events)
        elif token in (tk.RETURN, tk.CALL):
            self._flush_stray(events)
            self._error(events, f"{_TOKEN_NAMES[token]} outside a message", "stray")
            self._stop(token)
        elif token == tk.END:
            self._flush_stray(events)
            self._error(events, "<|end|> outside a message", "stray")
        else:
            self._stray.append(token)

    def _in_header(self, token: int, events: list[Event]) -> None:
        if token == tk.MESSAGE:
            self._start_content(self._parse(self._decode(self._header_tokens)), "", events)
        elif token in (tk.END, tk.RETURN, tk.CALL, tk.START):
            if self._header_tokens:
                self._error(events, f"message header ended by {_TOKEN_NAMES[token]} "
                                    "before <|message|>", "header")
                self._malformed_header(events)
            else:
                self._error(events, f"{_TOKEN_NAMES[token]} where a message header was expected",
                            "stray")
            self._after_message(token)
        else:
            self._header_tokens.append(token)
            if b">" in tk.get_encoding().decode_single_token_bytes(token):
                text = self._decode(self._header_tokens)
                if MESSAGE_MARKER in text:
                    head, _, rest = text.partition(MESSAGE_MARKER)
                    self._error(events, "<|message|> written as plain text", "header")
                    self._start_content(self._parse(head), rest, events)

    def _in_content(self, token: int, events: list[Event]) -> None:
        if token in (tk.END, tk.RETURN, tk.CALL):
            self._close_message(events)
            self._after_message(token)
        elif token == tk.START:
            self._error(events, "<|start|> inside a message: closed the message", "format")
            self._close_message(events)
            self._begin_header(None)
        elif token >= tk.STARTOFTEXT:
            self._special_in_body(token, "", events)
        else:
            piece = self._decoder.decode(tk.get_encoding().decode_single_token_bytes(token))
            if piece:
                self._body_text(piece, events)

    def _body_text(self, piece: str, events: list[Event]) -> None:
        """Emit body text, holding back what may become a spelled-out special token."""
        text, self._held = self._held + piece, ""
        while text:
            at = text.find("<|")
            if at < 0:
                keep = 1 if text.endswith("<") else 0
                self._emit(text[:len(text) - keep], events)
                self._held = text[len(text) - keep:]
                return
            self._emit(text[:at], events)
            found = _SPELLED.match(text, at)
            name = found.group(1)
            if found.group(2) is None:
                if text[found.end():] in ("", "|") and len(name) <= _LONGEST_NAME:
                    self._held = text[at:]  # may still become a marker
                    return
                self._emit("<|", events)    # `<|` that is no marker
                text = text[at + 2:]
                continue
            marker, rest = found.group(0), text[found.end():]
            self._special_in_body(tk.NAMED_SPECIAL_TOKENS.get(marker, -1), rest, events,
                                  spelled=marker)
            return

    def _emit(self, text: str, events: list[Event]) -> None:
        # Text shown before a dropped marker may join the text after it into a new one
        # (`<` + `<|x|>` + `|end|>`): the part that would complete it is dropped too.
        shown = self._shown
        while (found := _MARKER.search(shown + text)) and found.end() > len(shown):
            text = text[found.end() - len(shown):]
        if text:
            self._shown = (shown + text)[-_LONGEST_NAME - 4:]  # enough to hold a marker
            self._text.append(text)
            events.append(ContentDelta(text, self._header.channel, self._header.recipient))

    def _special_in_body(self, token: int, rest: str, events: list[Event],
                         spelled: str | None = None) -> None:
        """A special token inside a body (module doc); `rest` is text after a spelled one."""
        shown = spelled or _TOKEN_NAMES.get(token, f"special token {token}")
        how = " written as text" if spelled else ""
        if token in _NEW_MESSAGE:
            self._error(events, f"{shown}{how} inside a message: closed the message and "
                                "started a new one", "token")
            self._close_message(events)
            self._begin_header(None if token == tk.START else Role.ASSISTANT)
            if token == tk.CHANNEL:
                self._header_tokens.append(tk.CHANNEL)
            for piece in tk.get_encoding().encode_ordinary(rest):  # the new header's text
                self._handle(piece, events)
            return
        self._error(events, f"{shown}{how} inside a message body dropped", "token")
        if rest:
            self._body_text(rest, events)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _decode(tokens: list[int]) -> str:
        return tk.get_encoding().decode_bytes(tokens).decode("utf-8", errors="replace")

    def _error(self, events: list[Event], reason: str, kind: str) -> list[Event]:
        error = ParseError(reason, kind)
        self.errors.append(error)
        events.append(error)
        return events

    def _begin_header(self, role: Optional[Role]) -> None:
        self.state, self._next_role, self._header_tokens = HEADER, role, []

    def _parse(self, header_text: str) -> Header:
        return parse_header(header_text, self._next_role, self.role or Role.ASSISTANT)

    def _start_content(self, header: Header, initial_text: str, events: list[Event]) -> None:
        for problem in header.problems:
            self._error(events, problem, "header")
        self._header, self._next_role, self._header_tokens = header, None, []
        self._text, self.state, self._held, self._shown = [], CONTENT, "", ""
        self._decoder.reset()
        events.append(MessageStart(header.author.role, header.channel, header.recipient,
                                   header.content_type, header.author.name))
        if initial_text:
            self._body_text(initial_text, events)

    def _malformed_header(self, events: list[Event]) -> None:
        """A header that never reached <|message|>: keep what it says as a message."""
        text = self._decode(self._header_tokens)
        head, marker, rest = text.partition(MESSAGE_MARKER)
        if marker:
            header = self._parse(head)
        else:
            # As openai-harmony's non-strict mode: the channel is metadata, the rest is text.
            problems: list[str] = []
            channel, rest = _take_channel(text, problems)
            rest, role = rest.strip(), self._next_role
            first = rest.split(maxsplit=1)[0] if rest else ""
            if role is None or first == role.value:
                if first in {r.value for r in Role}:
                    role, rest = Role(first), rest[len(first):].lstrip()
                role = role or self.role or Role.ASSISTANT
            header = Header(Author(role=role), channel, None, None, problems)
        self._start_content(header, rest, events)
        if self.state == CONTENT:
            self._close_message(events)
        elif self.state == HEADER and self._header_tokens:  # its text held another header
            self._malformed_header(events)

    def _close_message(self, events: list[Event]) -> None:
        tail, self._held = self._held + self._decoder.decode(b"", final=True), ""
        self._emit(tail, events)
        header = self._header
        message = Message(author=header.author, content=[TextContent(text="".join(self._text))],
                          channel=header.channel, recipient=header.recipient,
                          content_type=header.content_type)
        self._check_tool_call(message, events)
        self.messages.append(message)
        events.append(MessageDone(message))
        self._header, self._text, self.state = None, [], EXPECT_START

    def _check_tool_call(self, message: Message, events: list[Event]) -> None:
        recipient, body = message.recipient, message.text
        if message.author.role != Role.ASSISTANT or recipient is None or not body.strip():
            return
        wants_json = recipient.startswith(JSON_NAMESPACES) or "json" in (message.content_type or "")
        if wants_json:
            try:
                json.loads(body)
            except ValueError as exc:
                self._error(events, f"tool call to {recipient}: arguments are not valid JSON "
                                    f"({exc})", "json")

    def _after_message(self, token: int) -> None:
        if token in (tk.RETURN, tk.CALL):
            self._stop(token)
        elif token == tk.START:
            self._begin_header(None)
        else:
            self.state = EXPECT_START

    def _stop(self, token: int) -> None:
        if token != tk.ENDOFTEXT:
            self.stop_token = token
        self.state, self._stopped_by, self._stopped_at = STOPPED, token, len(self.tokens)

    def _end_of_text(self, events: list[Event]) -> None:
        if self.state == CONTENT:
            self._error(events, "<|endoftext|> inside a message: closed the message", "format")
            self._close_message(events)
        elif self.state == HEADER and self._header_tokens:
            self._error(events, "message header ended by <|endoftext|>", "header")
            self._malformed_header(events)
        self._flush_stray(events)
        self._stop(tk.ENDOFTEXT)

    def _flush_stray(self, events: list[Event]) -> None:
        if self._stray:
            text = self._decode(self._stray)
            self._error(events, f"{len(self._stray)} stray token(s) outside a message ignored: "
                                f"{text[:80]!r}", "stray")
            self._stray = []


def parse_completion(tokens, role: Role | str | None = Role.ASSISTANT) -> ParseResult:
    """Parse a whole completion (ids after the prompt's `<|start|>assistant`)."""
    parser = StreamParser(role)
    parser.process_all(tokens)
    parser.finish()
    return parser.result()
