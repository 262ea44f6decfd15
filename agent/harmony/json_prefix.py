"""Prefixes of JSON objects that match a flat object schema, byte by byte.

A *flat* schema is an object whose properties are all scalars: `type` string / number /
integer / boolean / null (or a list of them, or `nullable`), or an `enum` of scalars. For
such a schema `ObjectPrefix` accepts exactly the byte strings that can still grow into a
matching object: declared keys only, each at most once, values of the declared type, JSON
whitespace between tokens (at most MAX_WHITESPACE bytes in a row), the closing `}` only once
every required key is there, and nothing but whitespace after it. It works on bytes, so a
token that ends inside a multi-byte character of a string value is fine. Keywords it cannot
check (minimum, pattern, format ...) are left to the tool's own validation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean", "null"})
# Keywords that make a property (or the object) more than a flat list of scalars.
STRUCTURAL = frozenset({"properties", "items", "prefixItems", "anyOf", "oneOf", "allOf", "not",
                        "$ref", "if", "patternProperties", "additionalProperties"})
WHITESPACE = frozenset(b" \t\n\r")
DIGITS = frozenset(b"0123456789")
HEX = frozenset(b"0123456789abcdefABCDEF")
ESCAPES = frozenset(b'"\\/bfnrt')
# Whitespace in a row between JSON tokens: room for pretty-printing, not for a model that
# pads with spaces because it wanted something the schema forbids.
MAX_WHITESPACE = 8

# phases
START, OPEN, NEXT_KEY, KEY, COLON, VALUE, STRING, NUMBER, LITERAL, AFTER, DONE = range(11)
# number states after each byte; a number may end in the ones in NUMBER_ENDS
SIGN, ZERO, INT, DOT, FRAC, EXP_MARK, EXP_SIGN, EXP = range(8)
NUMBER_ENDS = frozenset({ZERO, INT, FRAC, EXP})


@dataclass(frozen=True)
class ValueSpec:
    """What one property's value may be: any value of `types`, or one of `literals`."""
    types: frozenset
    literals: tuple = ()  # enum values as JSON text (bytes); when set, nothing else fits

    def literal_options(self) -> tuple:
        if self.literals:
            return self.literals
        return ((b"true", b"false") if "boolean" in self.types else ()) + \
               ((b"null",) if "null" in self.types else ())


@dataclass(frozen=True)
class FlatObject:
    properties: dict  # JSON text of each key (bytes, no quotes) -> ValueSpec
    required: frozenset


def flat_object(schema: Any) -> Optional[FlatObject]:
    """The FlatObject for a JSON Schema, or None when the schema is not a flat object."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return None
    if any(key in schema for key in STRUCTURAL - {"properties", "additionalProperties"}):
        return None
    if schema.get("additionalProperties", False) is not False:
        return None  # undeclared keys are welcome: nothing to hold the keys to
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    specs = {}
    for name, prop in properties.items():
        spec = _value_spec(prop)
        if spec is None or not _plain_key(name):
            return None
        specs[name.encode()] = spec
    required = schema.get("required", [])
    if not isinstance(required, list) or any(name not in properties for name in required):
        return None
    return FlatObject(specs, frozenset(name.encode() for name in required))


def _plain_key(name: Any) -> bool:
    # keys needing escapes would have two spellings; no real tool has them
    return isinstance(name, str) and name != "" and not any(c in name for c in '"\\') \
        and all(ord(c) >= 0x20 for c in name)


def _value_spec(prop: Any) -> Optional[ValueSpec]:
    if not isinstance(prop, dict) or any(key in prop for key in STRUCTURAL):
        return None
    enum = prop.get("enum", [prop["const"]] if "const" in prop else None)
    if enum is not None:
        if not isinstance(enum, list) or not enum or \
                not all(v is None or isinstance(v, (str, int, float, bool)) for v in enum):
            return None
        values = list(enum) + ([None] if prop.get("nullable") is True else [])
        literals = tuple(dict.fromkeys(json.dumps(v, ensure_ascii=False).encode() for v in values))
        return ValueSpec(frozenset(), literals)
    kind = prop.get("type")
    kinds = [kind] if isinstance(kind, str) else kind
    if not isinstance(kinds, list) or not kinds or not all(k in SCALAR_TYPES for k in kinds):
        return None  # no type (any value), object, array
    types = set(kinds) | ({"null"} if prop.get("nullable") is True else set())
    return ValueSpec(frozenset(types))


class ObjectPrefix:
    """The state after some bytes of a JSON object for one FlatObject."""

    __slots__ = ("schema", "phase", "seen", "buffer", "spec", "number", "escape", "integer",
                 "spaces")

    def __init__(self, schema: FlatObject):
        self.schema = schema
        self.phase = START
        self.seen: frozenset = frozenset()  # keys already written
        self.buffer = b""                   # the key or literal being written
        self.spec: Optional[ValueSpec] = None
        self.number = SIGN
        self.escape = 0     # in a string: 0, -1 after a backslash, n hex digits still due
        self.integer = False
        self.spaces = 0     # whitespace bytes in a row

    def copy(self) -> "ObjectPrefix":
        other = ObjectPrefix.__new__(ObjectPrefix)
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    @property
    def complete(self) -> bool:
        """The object is closed (only whitespace may follow)."""
        return self.phase == DONE

    def accepts(self, data: bytes) -> bool:
        """Whether the bytes so far plus `data` are still a valid prefix (state unchanged)."""
        return self.copy().feed(data)

    def feed(self, data: bytes) -> bool:
        """Consume `data`; False (state then undefined) when it leaves the valid prefixes."""
        for byte in data:
            if not self._step(byte):
                return False
        return True

    # -- one byte ---------------------------------------------------------------------------

    def _unused(self) -> list:
        return [k for k in self.schema.properties if k not in self.seen]

    def _may_close(self) -> bool:
        return self.schema.required <= self.seen

    def _step(self, byte: int) -> bool:
        phase = self.phase
        if phase == STRING:
            return self._string(byte)
        if phase == NUMBER:
            following = _number_step(self.number, byte, self.integer)
            if following is not None:
                self.number = following
                return True
            if self.number not in NUMBER_ENDS:
                return False
            self.phase = AFTER  # the number ended; this byte belongs to what follows
            return self._step(byte)
        if phase == LITERAL:
            grown = self.buffer + bytes((byte,))
            if any(option.startswith(grown) for option in self.spec.literal_options()):
                self.buffer = grown
                return True
            if self.buffer not in self.spec.literal_options():
                return False
            self.phase = AFTER
            return self._step(byte)
        if phase == KEY:
            if byte == 0x22:  # the closing quote: a whole, unused key
                if self.buffer not in self.schema.properties or self.buffer in self.seen:
                    return False
                self.seen = self.seen | {self.buffer}
                self.spec = self.schema.properties[self.buffer]
                self.phase = COLON
                return True
            grown = self.buffer + bytes((byte,))
            if not any(key.startswith(grown) for key in self._unused()):
                return False
            self.buffer = grown
            return True
        if byte in WHITESPACE:
            self.spaces += 1
            return self.spaces <= MAX_WHITESPACE
        self.spaces = 0
        if phase == START:
            return self._to(OPEN) if byte == 0x7B else False
        if phase == OPEN and byte == 0x7D:
            return self._to(DONE) if self._may_close() else False
        if phase in (OPEN, NEXT_KEY):
            if byte != 0x22:
                return False
            self.buffer = b""
            return self._to(KEY)
        if phase == COLON:
            return self._to(VALUE) if byte == 0x3A else False
        if phase == VALUE:
            return self._value_start(byte)
        if phase == AFTER:
            if byte == 0x2C:
                return self._to(NEXT_KEY) if self._unused() else False
            if byte == 0x7D:
                return self._to(DONE) if self._may_close() else False
            return False
        return False  # DONE: only whitespace

    def _to(self, phase: int) -> bool:
        self.phase = phase
        return True

    def _value_start(self, byte: int) -> bool:
        spec = self.spec
        if byte == 0x22 and "string" in spec.types:
            self.escape = 0
            return self._to(STRING)
        if (byte == 0x2D or byte in DIGITS) and spec.types & {"number", "integer"}:
            self.integer = "number" not in spec.types
            self.number = SIGN if byte == 0x2D else ZERO if byte == 0x30 else INT
            return self._to(NUMBER)
        self.buffer = bytes((byte,))
        if not any(option.startswith(self.buffer) for option in spec.literal_options()):
            return False
        return self._to(LITERAL)

    def _string(self, byte: int) -> bool:
        if self.escape == -1:
            if byte == 0x75:  # \uXXXX
                self.escape = 4
                return True
            self.escape = 0
            return byte in ESCAPES
        if self.escape > 0:
            self.escape -= 1
            return byte in HEX
        if byte == 0x5C:
            self.escape = -1
            return True
        if byte == 0x22:
            return self._to(AFTER)
        return byte >= 0x20  # control characters must be escaped


def _number_step(state: int, byte: int, integer: bool) -> Optional[int]:
    """The JSON number grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; integers stop
    before the fraction."""
    digit = byte in DIGITS
    if state == SIGN:
        return ZERO if byte == 0x30 else INT if digit else None
    if state in (ZERO, INT):
        if state == INT and digit:
            return INT
        if integer:
            return None
        return DOT if byte == 0x2E else EXP_MARK if byte in (0x65, 0x45) else None
    if state in (DOT, FRAC):
        if digit:
            return FRAC
        return EXP_MARK if state == FRAC and byte in (0x65, 0x45) else None
    if state == EXP_MARK:
        return EXP_SIGN if byte in (0x2B, 0x2D) else EXP if digit else None
    return EXP if digit else None  # EXP_SIGN, EXP


def json_prefix_ok(text: str | bytes, schema: Any) -> bool:
    """Whether `text` can still grow into a JSON object matching the flat `schema`."""
    flat = flat_object(schema)
    if flat is None:
        raise ValueError("json_prefix_ok needs a flat object schema (scalar properties only)")
    return ObjectPrefix(flat).feed(text.encode() if isinstance(text, str) else text)
