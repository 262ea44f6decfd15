"""Grammar-constrained tool calls ("strict" tool calling) for local generation.

`ToolCallConstraint` follows a completion token by token (with the streaming parser, so its
message boundaries are the loop's) and says which next tokens keep it well-formed:
- in an assistant header, the text after each `to=` up to a space or a special token must
  spell one of the declared recipients;
- in the body of a message to a recipient whose arguments schema is a flat object (see
  json_prefix.py), the body must be a prefix of a matching JSON object, and `<|call|>` may
  end it only once the object is complete;
- everything else (analysis, final answers, python code, other schemas) is free.
The sampler asks `allows(token)` for its candidates and reports its pick with
`advance(token)`. A picked token the constraint did not allow (the sampler found no allowed
one) relaxes it until the next message boundary, so generation always goes on.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional

from . import tokenizer as tk
from .json_prefix import ObjectPrefix, flat_object
from .messages import Role
from .parse import CONTENT, StreamParser

HEADER_SPACE = frozenset(b" \t\n\x0c\r")  # what the parser splits a header on
BOUNDARIES = frozenset({tk.START, tk.MESSAGE, tk.END, tk.CALL, tk.RETURN, tk.ENDOFTEXT})
_FIRST_WORD = re.compile(rb"[ \t\n\x0c\r]|<\|")


class ToolCallConstraint:
    """argument_schemas: every declared recipient (`functions.f`, `browser.search`, `python`)
    -> its arguments' JSON Schema, or None for free-form input."""

    def __init__(self, argument_schemas: Mapping[str, Optional[dict]],
                 role: Role | str = Role.ASSISTANT):
        if not argument_schemas:
            raise ValueError("ToolCallConstraint needs at least one declared recipient")
        self.recipients = tuple(name.encode() for name in argument_schemas)
        self.objects = {name: flat_object(schema) for name, schema in argument_schemas.items()}
        self._parser = StreamParser(role)
        self._header: Optional[bytes] = None  # the header so far, while in one
        self._header_role: Optional[Role] = None
        self._body: Optional[ObjectPrefix] = None
        self._body_header = None  # the parsed header `_body` belongs to
        self._relaxed = False
        self._sync()

    def allows(self, token: int) -> bool:
        if self._relaxed:
            return True
        if self._header is not None:
            return self._header_allows(token)
        if self._body is not None:
            if token >= tk.STARTOFTEXT:  # special tokens: only <|call|>, after the object
                return token == tk.CALL and self._body.complete
            return self._body.accepts(tk.token_bytes(token))
        return True

    def advance(self, token: int) -> None:
        allowed = self.allows(token)
        in_body = self._body
        self._parser.process(token)
        self._sync()
        if self._body is not None and self._body is in_body and token < tk.STARTOFTEXT:
            if not self._body.feed(tk.token_bytes(token)):
                self._body = None  # the body left the schema: free until it ends
        if token in BOUNDARIES:
            self._relaxed = False
        elif not allowed:
            self._relaxed = True

    # -- state -----------------------------------------------------------------------------

    def _sync(self) -> None:
        """Read the parser's state after a token: which header or body we are in."""
        pending = self._parser.header_in_progress
        if pending is not None:
            self._header_role, tokens = pending
            self._header = b"".join(tk.token_bytes(t) for t in tokens)
        else:
            self._header = None
        header = self._parser.current_header
        if self._parser.state != CONTENT or header is None:
            self._body = self._body_header = None
        elif header is not self._body_header:  # a new message body begins
            self._body_header = header
            flat = self.objects.get(header.recipient) if header.author.role == Role.ASSISTANT else None
            self._body = ObjectPrefix(flat) if flat is not None else None
            start = self._parser.current_text  # a header ended by plain-text <|message|>
            if self._body is not None and start and not self._body.feed(start.encode()):
                self._body = None

    # -- the recipient rule --------------------------------------------------------------------

    def _header_allows(self, token: int) -> bool:
        if not _speaks_as_assistant(self._header, self._header_role):
            return True
        return recipients_ok(self._header + tk.token_bytes(token), len(self._header),
                             self.recipients)


def _speaks_as_assistant(header: bytes, role: Optional[Role]) -> bool:
    """Whether a header is the assistant's (the model writes no other kind in practice)."""
    if role is not None:
        return role == Role.ASSISTANT
    first = _FIRST_WORD.split(header.lstrip(), maxsplit=1)[0]
    return first in (b"", b"assistant") or first.startswith(b"to=")


def recipients_ok(header: bytes, judged: int, recipients: tuple) -> bool:
    """Every `to=` recipient in `header` still ending at or after byte `judged` (earlier ones
    were judged already) is a declared recipient, or a prefix of one if not yet ended."""
    start = 0
    while (at := header.find(b"to=", start)) >= 0:
        start = at + 3
        if at > 0 and header[at - 1] not in HEADER_SPACE and not header[:at].endswith(b"|>"):
            continue  # `to=` inside a word is not a recipient
        name = header[start:]
        end = next((i for i, byte in enumerate(name)
                    if byte in HEADER_SPACE or name.startswith(b"<|", i)), None)
        if end is None:
            if not any(r.startswith(name) for r in recipients):
                return False
        elif start + end >= judged and name[:end] not in recipients:
            return False
    return True


def tool_call_constraint(argument_schemas: Mapping[str, Optional[dict]]
                         ) -> Optional[ToolCallConstraint]:
    """A constraint for these recipients, or None when there are none to hold calls to."""
    return ToolCallConstraint(argument_schemas) if argument_schemas else None
