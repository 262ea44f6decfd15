"""`@tool`: a typed Python function becomes a developer function the model can call.

The JSON Schema comes from the type hints through pydantic and is then simplified to the
subset Harmony's TypeScript-like rendering understands: `$ref`s inlined, titles dropped,
`Optional[X]` as `X` marked nullable, unions of plain types as a `type` list, other unions as
`oneOf`. Descriptions come from the docstring (Google, NumPy, reST or Epydoc style, read by
docstring-parser) or from `Annotated[..., Field(description=...)]`.

`SchemaTool` is the other form tools come in (MCP servers, OpenAI-style tool lists): a raw
JSON Schema and a callable, the arguments checked with jsonschema before the call.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import sys
from typing import Any, Callable

import docstring_parser
import jsonschema
import pydantic

from agent.harmony.grammar import closed
from agent.tools.base import (BUILTIN_NAMESPACES, InvalidArguments, Tool, ToolError,
                              ToolResult, format_validation_error, invalid_arguments_result,
                              parse_json_arguments)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {arg: description}) from a Google, NumPy, reST or Epydoc docstring."""
    if not doc or not doc.strip():
        return "", {}
    try:
        parsed = docstring_parser.parse(inspect.cleandoc(doc))
    except docstring_parser.ParseError:  # not any known style: all of it describes the tool
        return inspect.cleandoc(doc), {}
    args = {p.arg_name: " ".join(p.description.split()) for p in parsed.params if p.description}
    return (parsed.description or "").strip(), args


def harmony_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema reduced to what Harmony renders: no $defs/$ref/titles/anyOf."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def simplify(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [simplify(n, seen) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].split("/")[-1]
            if name in seen:  # a recursive model: describe the inner level loosely
                return {"type": "object"}
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return simplify({**defs.get(name, {}), **extra}, seen + (name,))  # unknown: any
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs", "definitions", "$schema", "$id"):
                continue
            if key == "properties":
                out[key] = {name: simplify(prop, seen) for name, prop in value.items()}
            elif key == "default":
                if value is not None:  # `default: null` says nothing `?` does not
                    out[key] = value  # a value, not a schema
            else:
                out[key] = simplify(value, seen)
        if "anyOf" in out:
            out = _collapse_union(out)
        if "const" in out and "enum" not in out:
            out["enum"] = [out.pop("const")]
        return out

    return simplify(schema)


def _collapse_union(node: dict[str, Any]) -> dict[str, Any]:
    variants = node.pop("anyOf")
    nullable = any(v.get("type") == "null" for v in variants)
    rest = [v for v in variants if v.get("type") != "null"]
    if len(rest) == 1:
        merged = {**rest[0], **node}
    elif all(set(v) == {"type"} and isinstance(v["type"], str) for v in rest):
        merged = {"type": [v["type"] for v in rest], **node}
    else:
        merged = {"oneOf": rest, **node}
    if nullable:
        merged["nullable"] = True
    return merged


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    return json.dumps(pydantic.TypeAdapter(Any).dump_python(value, mode="json"),
                      ensure_ascii=False)


class FunctionTool(Tool):
    """A developer function (`functions.NAME`) backed by a Python callable."""
    namespace = "functions"

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, timeout: float | None = 60.0,
                 localns: dict[str, Any] | None = None):
        """localns: names for string annotations besides the module's (the definer's locals)."""
        self.fn = fn
        self._localns = localns or {}
        self.name = check_name(name or fn.__name__)
        summary, arg_docs = parse_docstring(fn.__doc__)
        self.description = description if description is not None else summary
        self.timeout = timeout
        self.arguments_model = self._arguments_model(fn, arg_docs)
        # nested models too: no object the model writes for this function takes other keys
        self.parameters = closed(harmony_schema(self.arguments_model.model_json_schema()))
        functools.update_wrapper(self, fn)

    def _arguments_model(self, fn: Callable[..., Any], arg_docs: dict[str, str]):
        signature = inspect.signature(fn)
        fields: dict[str, Any] = {}
        for pname, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ValueError(f"tool {self.name!r}: *{pname} / **{pname} parameters "
                                 "cannot be described to the model; list each argument")
            annotation = self._resolve(fn, pname, param.annotation)
            default = ... if param.default is param.empty else param.default
            if pname in arg_docs and not _has_description(annotation):
                default = pydantic.Field(default, description=arg_docs[pname])
            fields[pname] = (annotation, default)
        # extra="forbid": the schema says additionalProperties: false, so the grammar cannot
        # write a key the function does not take
        return pydantic.create_model(f"{self.name}_arguments",
                                     __config__=pydantic.ConfigDict(extra="forbid"), **fields)

    def _resolve(self, fn: Callable[..., Any], pname: str, annotation: Any) -> Any:
        """A parameter's type; string annotations (PEP 563) are evaluated in the module."""
        if annotation is inspect.Parameter.empty:
            return Any
        if not isinstance(annotation, str):
            return annotation
        try:
            return eval(annotation, getattr(fn, "__globals__", {}), self._localns)  # noqa: S307
        except NameError as e:
            raise ValueError(f"tool {self.name!r}: cannot resolve the type of {pname!r} "
                             f"({annotation}): {e}; define it at module level") from None

    def tool_description(self):
        from agent.harmony.messages import ToolDescription
        params = self.parameters if self.parameters.get("properties") else None
        return ToolDescription(name=self.name, description=self.description, parameters=params)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)  # the decorated function stays callable as before

    async def call(self, recipient: str, arguments: str) -> ToolResult:
        try:
            raw = parse_json_arguments(recipient, arguments)
            try:
                validated = self.arguments_model.model_validate(raw)
            except pydantic.ValidationError as e:
                raise InvalidArguments(format_validation_error(recipient, e)) from None
        except InvalidArguments as e:
            return invalid_arguments_result(e)
        kwargs = {name: getattr(validated, name) for name in self.arguments_model.model_fields}
        return await run_callable(self.fn, kwargs)


def check_name(name: str) -> str:
    """A function tool's name, or a ValueError saying why the model could not use it."""
    if name in BUILTIN_NAMESPACES:
        raise ValueError(
            f"tool name {name!r} is reserved for the built-in {name} tool (gpt-oss would send "
            f"it raw {'code' if name == 'python' else 'text'} instead of JSON); rename the "
            "function or pass @tool(name=...)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise ValueError(f"tool name {name!r} must be an identifier (letters, digits, _)")
    return name


async def run_callable(fn: Callable[..., Any], kwargs: dict[str, Any]) -> ToolResult:
    """Call `fn(**kwargs)`; its return value or its failure as what the model reads."""
    try:
        if inspect.iscoroutinefunction(fn):
            value = await fn(**kwargs)
        else:  # a thread, so a slow function neither blocks the loop nor escapes the timeout
            value = await asyncio.to_thread(fn, **kwargs)
        if inspect.isawaitable(value):  # e.g. an object whose __call__ is async
            value = await value
    except ToolError as e:
        return ToolResult(str(e), error=True)
    except Exception as e:  # the function's own failure is news for the model, not a crash
        return ToolResult(f"Error: {type(e).__name__}: {e}", error=True)
    if isinstance(value, ToolResult):
        return value
    return ToolResult(_to_text(value), data=value)


class SchemaTool(Tool):
    """A developer function (`functions.NAME`) from a raw JSON Schema and a callable.

    `fn` (sync or async) gets the validated arguments as keyword arguments (the schema's
    defaults are shown to the model, not filled in: the callable's own apply) and returns a
    value (shown as text or JSON) or a ToolResult; subclasses override `invoke` instead.
    """
    namespace = "functions"

    def __init__(self, name: str, description: str, parameters: dict[str, Any] | None,
                 fn: Callable[..., Any] | None = None, *, timeout: float | None = 60.0):
        self.name = check_name(name)
        self.description = description or ""
        self.schema = parameters or {"type": "object", "properties": {}}
        self.validator = argument_validator(self.name, self.schema)
        self.parameters = harmony_schema(self.schema)
        self.fn = fn
        self.timeout = timeout

    tool_description = FunctionTool.tool_description

    async def call(self, recipient: str, arguments: str) -> ToolResult:
        try:
            raw = parse_json_arguments(recipient, arguments)
            check_arguments(recipient, self.validator, raw)
        except InvalidArguments as e:
            return invalid_arguments_result(e)
        return await self.invoke(raw)

    async def invoke(self, arguments: dict[str, Any]) -> ToolResult:
        """Run the tool on arguments that passed the schema."""
        if self.fn is None:
            raise NotImplementedError(f"{type(self).__name__} has no callable; override invoke")
        return await run_callable(self.fn, arguments)


def argument_validator(name: str, schema: dict[str, Any]):
    """A jsonschema validator for a tool's arguments (the draft the schema names, else the
    latest), or a ValueError naming the tool when the schema itself is broken."""
    if not isinstance(schema, dict):
        raise ValueError(f"tool {name!r}: the parameters schema must be a JSON object, "
                         f"got {type(schema).__name__}")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "the top level"
        raise ValueError(f"tool {name!r}: invalid parameters schema at {where}: "
                         f"{e.message}") from None
    return cls(schema)


def check_arguments(recipient: str, validator, arguments: dict[str, Any]) -> None:
    """Raises InvalidArguments naming each failing field (at most five), or returns."""
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        parts.append(f"{where}: {message}")
    raise InvalidArguments(f"Invalid arguments for {recipient}: " + "; ".join(parts) + ".")


def _has_description(annotation: Any) -> bool:
    for meta in getattr(annotation, "__metadata__", ()):
        if getattr(meta, "description", None):
            return True
    return False


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None,
         description: str | None = None, timeout: float | None = 60.0,
         schema: dict[str, Any] | None = None):
    """Decorator: `@tool` or `@tool(name=..., description=..., timeout=...)`.

    With `schema=` (a JSON Schema of the arguments) the type hints are not read: the function
    becomes a SchemaTool, its arguments checked against that schema by jsonschema."""
    def wrap(f: Callable[..., Any], localns: dict[str, Any] | None = None) -> Tool:
        if schema is not None:
            summary = parse_docstring(f.__doc__)[0]
            return SchemaTool(name or f.__name__, summary if description is None else description,
                              schema, f, timeout=timeout)
        # The decorating frame's locals resolve types defined inside a function (PEP 563).
        localns = localns if localns is not None else sys._getframe(1).f_locals
        return FunctionTool(f, name=name, description=description, timeout=timeout,
                            localns=localns)
    return wrap(fn, sys._getframe(1).f_locals) if fn is not None else wrap
