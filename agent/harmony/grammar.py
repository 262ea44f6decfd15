"""Grammar-constrained generation of one assistant turn, with llguidance.

`turn_grammar` writes the Harmony frame of what the assistant may generate after the prompt's
`<|start|>assistant`, as an llguidance Lark grammar:

    start   := (note <|start|> "assistant")* ending
    note    := analysis or commentary text, ended by <|end|>
    ending  := final | call              (tool_choice: auto; only call: required / a name;
                                           only final: none or no tools)
    final   := <|channel|>final<|message|> TEXT-or-JSON <|return|>
    call    := a header naming one declared recipient (either order of `to=` and the
               channel, with or without a content type), then its arguments (the tool's
               JSON Schema, or free text for code) and <|call|>

Message bodies are text without special tokens and without the two bytes `<|` (so nothing
that looks like a Harmony marker can reach a user); the response format's schema constrains
the final answer. `GrammarConstraint` follows a completion token by token and gives the
sampler a mask of the tokens that keep it in the grammar (model/generate.py). When the model
can produce none of them the step goes unconstrained and the constraint turns itself off
(`error` says why), so generation never stalls. The same frame is also written in llama.cpp's
GBNF (`dialect=GBNF`, `GrammarConstraint.gbnf`) for llama.cpp servers; there the arguments
follow their schemas' types, enums and required keys, and the rest of each schema is checked
on the returned tokens.
"""
from __future__ import annotations

import functools
import json
import threading
from typing import Callable, Mapping, Optional, Sequence

from . import tokenizer as tk

# Body text: anything without "<|" (no marker, spelled or special, inside a message).
_TEXT = r"/([^<]|<+[^<|])*<*/"


class GrammarError(ValueError):
    """A tool's parameters or a response format that llguidance cannot compile."""


class _Lark:
    """llguidance's Lark: special tokens by name, JSON by its full schema (%json)."""
    root, defines, alternative = "start", ":", "\n    | "

    def rule(self, name: str) -> str:
        return name

    def token(self, text: str) -> str:
        return text

    def stop(self, text: str) -> str:
        return " " + text

    def json(self, schema: dict, what: str) -> str:
        return _json_rule(schema, what)

    def bounded_text(self, name: str, tokens: int) -> tuple[str, str]:
        return name, f"{name}[max_tokens={max(1, int(tokens))}]: {_TEXT}"

    def support(self) -> list[str]:
        return [f"TEXT: {_TEXT}"]

    def options(self) -> list[str]:
        # a literal's text in any tokens (llguidance otherwise masks a forced literal to its
        # canonical tokens): a model whose closed vocabulary lacks them spells it smaller,
        # and a real model may prefer a shorter first token
        return ['%llguidance {"no_forcing": true}']


class _Gbnf:
    """llama.cpp's GBNF: rule names without "_", special tokens by id (`<[200005]>`), JSON
    values by what GBNF can say of their schemas (_gbnf_value)."""
    root, defines, alternative = "root", " ::=", " | "  # GBNF rules end at a newline

    def rule(self, name: str) -> str:
        return {"start": "root", "TEXT": "text"}.get(name, name.replace("_", "-"))

    def token(self, text: str) -> str:
        return f"<[{tk.NAMED_SPECIAL_TOKENS[text]}]>"

    def stop(self, text: str) -> str:
        # <|return|> and <|call|> end generation in llama.cpp, which allows such a token only
        # where the grammar is complete: so the grammar ends just before them
        return ""

    def json(self, schema: dict, what: str) -> str:
        return _gbnf_value(schema)

    def bounded_text(self, name: str, tokens: int) -> tuple[str, None]:
        return "text", None         # GBNF cannot count tokens: the budget still ends the turn

    def options(self) -> list[str]:
        return []

    def support(self) -> list[str]:
        return ['text ::= ([^<] | "<"+ [^<|])* "<"*',
                'json-value ::= json-object | json-array | json-string | json-number'
                ' | "true" | "false" | "null"',
                'json-object ::= "{" ws (json-string ws ":" ws json-value ws'
                ' ("," ws json-string ws ":" ws json-value ws)*)? "}"',
                'json-array ::= "[" ws (json-value ws ("," ws json-value ws)*)? "]"',
                r'json-string ::= "\"" ([^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))* "\""',
                'json-number ::= json-integer ("." [0-9]+)? ([eE] [-+]? [0-9]+)?',
                'json-integer ::= "-"? ("0" | [1-9] [0-9]*)',
                'ws ::= " "?']


LARK, GBNF = _Lark(), _Gbnf()
_GBNF_TYPES = {"string": "json-string", "integer": "json-integer", "number": "json-number",
               "boolean": '("true" | "false")', "null": '"null"'}


_GBNF_MAX_CHARS = 20_000  # an expression (item and key lists are written twice) is cut here


def _gbnf_value(schema, depth: int = 0) -> str:
    """A JSON Schema as a GBNF expression: types, enums, const, anyOf / oneOf, arrays of
    items, objects of their declared keys, the required ones first and in order (other keys
    only where additionalProperties allows them); what GBNF cannot say, such as $ref,
    patterns, bounds or repeated keys, is left to the check of the returned tokens. A part
    that would grow past _GBNF_MAX_CHARS is any JSON value (or object) instead."""
    out = _gbnf_expression(schema, depth)
    if len(out) <= _GBNF_MAX_CHARS:
        return out
    return "json-object" if isinstance(schema, dict) and schema.get("type") == "object" \
        else "json-value"


def _gbnf_expression(schema, depth: int) -> str:
    if not isinstance(schema, dict) or depth > 12:
        return "json-value"
    if "const" in schema:
        return _gbnf_literal(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return "(" + " | ".join(_gbnf_literal(v) for v in schema["enum"]) + ")"
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return "(" + " | ".join(_gbnf_value(s, depth + 1) for s in schema[key]) + ")"
    kind = schema.get("type")
    if isinstance(kind, list) and kind:
        return "(" + " | ".join(_gbnf_value({**schema, "type": k}, depth + 1) for k in kind) + ")"
    if kind in _GBNF_TYPES:
        return _GBNF_TYPES[kind]
    if kind == "array":
        item = _gbnf_value(schema.get("items"), depth + 1)
        return f'("[" ws ({item} ws ("," ws {item} ws)*)? "]")'
    properties = schema.get("properties")
    if kind in ("object", None) and isinstance(properties, dict) and properties:
        pairs = {name: f'{_gbnf_literal(str(name))} ws ":" ws {_gbnf_value(sub, depth + 1)}'
                 for name, sub in properties.items()}
        required = [pairs[n] for n in dict.fromkeys(schema.get("required") or ()) if n in pairs]
        optional = [p for p in pairs.values() if p not in required]
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):   # absent: the declared keys only
            optional.append(f'json-string ws ":" ws {_gbnf_value(extra, depth + 1)}')
        other = "(" + " | ".join(optional) + ")" if optional else None
        if not required:
            return f'("{{" ws ({other} ws ("," ws {other} ws)*)? "}}")'
        # the required keys first, in their order, then any of the others
        rest = f' (ws "," ws {other})*' if other else ""
        return '("{" ws ' + ' ws "," ws '.join(required) + rest + ' ws "}")'
    return "json-object" if kind == "object" else "json-value"


def _gbnf_literal(value) -> str:
    """A JSON value's text as a GBNF string literal."""
    text = json.dumps(value, ensure_ascii=False)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def turn_grammar(recipients: Mapping[str, Optional[dict]], *, tool_choice: str = "auto",
                 response_format: Optional[dict] = None, max_notes: Optional[int] = None,
                 note_tokens: Optional[int] = None, text_tokens: Optional[int] = None,
                 dialect=LARK) -> str:
    """The grammar of one assistant completion, in llguidance's Lark (or, with
    `dialect=GBNF`, in llama.cpp's GBNF).

    recipients: declared tool -> its arguments' JSON Schema (None: free text, like python).
    tool_choice: "auto", "none", "required", or a recipient that must be called.
    response_format: a JSON Schema the final answer must match (None: free text).
    max_notes, note_tokens: at most this many analysis / commentary messages before the
    ending, each at most this many tokens (None: no limit), so that a token budget can
    leave room for the ending; text_tokens: the same bound on free-text arguments (code)."""
    if tool_choice not in ("auto", "none", "required") and tool_choice not in recipients:
        raise GrammarError(f"tool_choice names {tool_choice!r}, which is not a declared tool")
    called = ({} if tool_choice == "none" else
              {tool_choice: recipients[tool_choice]} if tool_choice not in ("auto", "required")
              else dict(recipients))
    if tool_choice == "required" and not called:
        raise GrammarError("tool_choice 'required' needs at least one declared tool")
    d = dialect
    channel, message, end = (d.token(t) for t in ("<|channel|>", "<|message|>", "<|end|>"))
    call = d.stop("<|call|>")
    text = d.rule("TEXT")
    extra_rules = []
    code = text
    if text_tokens is not None and any(s is None for s in called.values()):
        code, rule = d.bounded_text("code_text", text_tokens)
        extra_rules.append(rule)
    channels = '("commentary" | "analysis")'
    content_type = f'(" " ({d.token("<|constrain|>")} "json" | "json" | "code"))?'
    endings = [] if tool_choice in ("required",) or tool_choice in recipients else [d.rule("final")]
    lines = []
    for index, (name, schema) in enumerate(called.items()):
        rule, args = d.rule(f"call_{index}"), d.rule(f"args_{index}")
        endings.append(rule)
        to = json.dumps(f" to={name}")
        lines.append(f"{rule}{d.defines} {channel} {channels} {to} {content_type} "
                     f"{message} {args}{call}{d.alternative}"
                     f"{to} {channel} {channels} {content_type} {message} {args}{call}")
        lines.append(f"{args}{d.defines} " + (d.json(schema, f"the parameters of {name}")
                                             if schema is not None else code))
    answer = d.json(response_format, "the response format") if response_format else text
    repeat = "*" if max_notes is None else f"{{0,{int(max_notes)}}}"
    note_body, note_rule = ((text, None) if note_tokens is None
                            else d.bounded_text("note_text", note_tokens))
    head = [f"{d.root}{d.defines} ({d.rule('note')} {d.token('<|start|>')} \"assistant\"){repeat} "
            f"{d.rule('ending')}",
            f"{d.rule('note')}{d.defines} {channel} (\"analysis\" | \"commentary\") {message} "
            f"{note_body} {end}",
            f"{d.rule('ending')}{d.defines} " + " | ".join(endings),
            f"{d.rule('final')}{d.defines} {channel} \"final\" {message} {answer}"
            f"{d.stop('<|return|>')}"]
    extra_rules.append(note_rule)
    return "\n".join(d.options() + head + lines + [r for r in extra_rules if r]
                     + d.support()) + "\n"


def _each_subschema(schema, change: Callable[[dict], dict]):
    """The schema with `change` applied to it and to every schema nested in it."""
    if isinstance(schema, list):
        return [_each_subschema(item, change) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: (_each_subschema(value, change) if key in _SUBSCHEMAS else value)
           for key, value in schema.items()}
    for key in ("properties", "$defs", "definitions", "patternProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: _each_subschema(sub, change) for name, sub in schema[key].items()}
    return change(out)


_SUBSCHEMAS = ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties",
               "not", "if", "then", "else", "contains")
_DIGITS = 10 ** 18   # llguidance makes a regex of an integer range: it takes 18 digits


def bounded(schema, limit: int):
    """The schema with a bound on everything a model could extend forever, where the schema
    sets none: `maxLength` on strings, `maxItems` on arrays, a range on integers and numbers
    (at most 18 digits) and at most 9 decimals on numbers. So a model looping inside a value
    still ends its JSON within a token budget."""
    def bound(node: dict) -> dict:
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if any(k in node for k in ("enum", "const")):
            return node
        if "string" in kinds and not any(k in node for k in ("maxLength", "pattern", "format")):
            node["maxLength"] = max(limit, int(node.get("minLength", 0)))
        if "array" in kinds and "maxItems" not in node:
            node["maxItems"] = max(limit, int(node.get("minItems", 0)))
        if "integer" in kinds or "number" in kinds:
            if not any(k in node for k in ("minimum", "exclusiveMinimum")):
                node["minimum"] = -(_DIGITS - 1) if "number" not in kinds else -1e18
            if not any(k in node for k in ("maximum", "exclusiveMaximum")):
                node["maximum"] = _DIGITS - 1 if "number" not in kinds else 1e18
        if "number" in kinds and "multipleOf" not in node:
            node["multipleOf"] = 1e-9
        return node
    return _each_subschema(schema, bound)


def closed(schema):
    """The schema with every object that declares its properties admitting only them
    (`additionalProperties: false` where the schema says nothing): for schemas made from
    Python types, whose validation ignores or refuses other keys anyway."""
    def close(node: dict) -> dict:
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    return _each_subschema(schema, close)


def _json_rule(schema: dict, what: str) -> str:
    if not isinstance(schema, dict):
        raise GrammarError(f"{what}: a JSON Schema must be an object, got {type(schema).__name__}")
    # At most one space between JSON tokens: a model must not loop on whitespace.
    options = {"whitespace_pattern": "[ ]?", "coerce_one_of": True}
    return "%json " + json.dumps({**schema, "x-guidance": {**options, **schema.get("x-guidance", {})}})


_TOKENIZER: list = []
_TOKENIZER_LOCK = threading.Lock()


def lltokenizer():
    """llguidance's view of the o200k_harmony vocabulary (built once per process, ~1-1.5 s;
    a caller arriving while warm_up's thread builds it waits for that one)."""
    with _TOKENIZER_LOCK:
        if not _TOKENIZER:
            from llguidance.tiktoken import lltokenizer_from_encoding
            _TOKENIZER.append(lltokenizer_from_encoding(tk.get_encoding(), n_vocab=tk.VOCAB_SIZE,
                                                        eos_token=tk.ENDOFTEXT))
        return _TOKENIZER[0]


def warm_up() -> None:
    """Build the tokenizer on a background thread (while a model loads, say); llguidance
    releases the GIL while it builds."""
    if not _TOKENIZER:
        threading.Thread(target=lltokenizer, name="llguidance-tokenizer", daemon=True).start()


def check_grammar(grammar: str):
    """llguidance's matcher for `grammar`; GrammarError naming the problem when it cannot
    compile it."""
    import llguidance
    # log_level 0: a token that leaves the grammar is reported by GrammarConstraint, not
    # printed; llguidance's default limits bound an untrusted grammar's cost
    matcher = llguidance.LLMatcher(lltokenizer(), llguidance.LLMatcher.grammar_from_lark(grammar),
                                   log_level=0)
    if matcher.is_error():
        raise GrammarError(matcher.get_error())
    return matcher


class GrammarConstraint:
    """A grammar followed token by token: `mask()` before each pick, `advance(token)` after."""

    def __init__(self, grammar: str, prefix: Sequence[int] = (),
                 write_gbnf: Optional[Callable[[], str]] = None):
        import numpy
        self.grammar = grammar
        self._write_gbnf = write_gbnf
        self.error: Optional[str] = None
        self.warnings: list[str] = []
        self._matcher = check_grammar(grammar)
        self._bits = numpy.full(tk.VOCAB_SIZE // 32, -1, dtype=numpy.int32)
        for token in prefix:        # tokens already written for the model (a forced header)
            self.advance(token)

    @functools.cached_property
    def gbnf(self) -> Optional[str]:
        """The same turn in llama.cpp's GBNF (None: not known), written when first asked
        for: only a llama.cpp backend reads it."""
        return self._write_gbnf() if self._write_gbnf is not None else None

    @property
    def active(self) -> bool:
        return self.error is None and not self._matcher.is_stopped()

    def mask(self):
        """A bool tensor [VOCAB_SIZE] of the tokens allowed next (None: no restriction)."""
        import numpy
        import torch  # not at import: the tokenizer's warm-up overlaps torch's import
        if not self.active:
            return None
        self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        # bit j of word i is token 32 * i + j: little-endian words, little-endian bits
        return torch.from_numpy(numpy.unpackbits(self._bits.view(numpy.uint8),
                                                 bitorder="little").view(numpy.bool_))

    def advance(self, token: int) -> None:
        if not self.active:
            return
        if not self._matcher.consume_token(int(token)):
            self.relax(f"token {int(token)} ({tk.token_bytes(int(token))!r}) left the grammar")

    def relax(self, reason: str) -> None:
        """Stop constraining (the model could write nothing the grammar allows)."""
        if self.error is None:
            self.error = reason


NOTES = 3  # analysis / commentary messages a budgeted turn may write before its ending


def constraint_for(recipients: Mapping[str, Optional[dict]], *, tool_choice: str = "auto",
                   response_format: Optional[dict] = None, prefix: Sequence[int] = (),
                   budget: Optional[int] = None) -> GrammarConstraint:
    """The constraint for one completion. With no recipients (or tool_choice "none") the turn
    can only end in a final answer: no tool name can be generated. A tool schema llguidance
    cannot compile is enforced only as "a JSON object" (`warnings` says which); a response
    format it cannot compile is an error. `budget`, the completion's max_tokens, bounds what
    the turn may write so that its call or answer ends inside it: at most NOTES notes of
    budget / (2 NOTES) tokens each, code at most about budget / 2 tokens, every string value
    at most budget / 8 characters, every array at most budget / 8 items and every number
    at most 18 digits and 9 decimals, unless a schema bounds them itself."""
    recipients, warnings = dict(recipients), []
    max_notes = note_tokens = text_tokens = None
    if budget is not None:
        max_notes, note_tokens, limit = NOTES, max(1, budget // (2 * NOTES)), max(16, budget // 8)
        text_tokens = max(16, budget // 2 - 32)
        recipients = {name: bounded(schema, limit) if schema is not None else None
                      for name, schema in recipients.items()}
        response_format = bounded(response_format, limit) if response_format else None
    for name, schema in recipients.items():
        problem = _schema_problem(json.dumps(schema, sort_keys=True)) if schema is not None else None
        if problem is not None:
            recipients[name] = {"type": "object"}
            warnings.append(f"{name}: parameters not enforced ({problem})")
    frame = dict(tool_choice=tool_choice, response_format=response_format,
                 max_notes=max_notes, note_tokens=note_tokens, text_tokens=text_tokens)
    constraint = GrammarConstraint(turn_grammar(recipients, **frame), prefix,
                                   functools.partial(turn_grammar, recipients, **frame, dialect=GBNF))
    constraint.warnings = warnings
    return constraint


@functools.lru_cache(maxsize=1024)
def _schema_problem(schema_json: str) -> Optional[str]:
    """Why llguidance cannot compile this schema (None: it can); cached, since an agent
    offers the same tools at every step."""
    try:
        check_grammar("start: " + _json_rule(json.loads(schema_json), "the parameters"))
    except GrammarError as exc:
        return _first_line(exc)
    return None


def _first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
