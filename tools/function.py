"""`@tool`: a typed Python function becomes a developer function the model can call.

The JSON Schema comes from the type hints through pydantic and is then simplified to the
subset Harmony's TypeScript-like rendering understands: `$ref`s inlined, titles dropped,
`Optional[X]` as `X` marked nullable, unions of plain types as a `type` list, other unions as
`oneOf`. Descriptions come from the docstring (summary and per-argument lines) or from
`Annotated[..., Field(description=...)]`.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import sys
from typing import Any, Callable

import pydantic

from agent.tools.base import (BUILTIN_NAMESPACES, InvalidArguments, Tool, ToolError,
                              ToolResult, format_validation_error, invalid_arguments_result,
                              parse_json_arguments)

_ARG_HEADERS = ("args:", "arguments:", "parameters:", "params:")
_OTHER_HEADERS = ("returns:", "return:", "raises:", "yields:", "examples:", "example:", "note:")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {arg: description}) from Google style `Args:` or Sphinx `:param x:` lines."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section, current, entry_indent = "summary", None, None
    for raw in lines:
        line = raw.strip()
        low = line.lower()
        indent = len(raw) - len(raw.lstrip())
        sphinx = re.match(r":param\s+(?:[^:]*\s)?(\w+):\s*(.*)", line)
        if sphinx:
            current, section = sphinx.group(1), "sphinx"
            args[current] = sphinx.group(2).strip()
        elif low in _ARG_HEADERS:
            section, current, entry_indent = "args", None, None
        elif low in _OTHER_HEADERS or low.startswith((":return", ":raise", ":rtype")):
            section, current = "other", None
        elif section == "summary":
            summary.append(line)
        elif section in ("args", "sphinx") and line:
            entry = re.match(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line)
            if section == "args" and entry_indent is None:
                entry_indent = indent
            is_entry = entry and section == "args" and indent == entry_indent
            if is_entry:
                current = entry.group(1)
                args[current] = entry.group(2).strip()
            elif current:  # a continuation line of the current argument
                args[current] = (args[current] + " " + line).strip()
    text = "\n".join(summary).strip()
    return text, args


def harmony_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema reduced to what Harmony renders: no $defs/$ref/titles/anyOf."""
    defs = schema.get("$defs", {})

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
            return simplify({**defs[name], **extra}, seen + (name,))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
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
        self.name = name or fn.__name__
        if self.name in BUILTIN_NAMESPACES:
            raise ValueError(
                f"tool name {self.name!r} is reserved for the built-in {self.name} tool "
                f"(gpt-oss would send it raw {'code' if self.name == 'python' else 'text'} "
                f"instead of JSON); rename the function or pass @tool(name=...)")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"tool name {self.name!r} must be an identifier (letters, digits, _)")
        summary, arg_docs = parse_docstring(fn.__doc__)
        self.description = description if description is not None else summary
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self.arguments_model = self._arguments_model(fn, arg_docs)
        self.parameters = harmony_schema(self.arguments_model.model_json_schema())
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
        return pydantic.create_model(f"{self.name}_arguments", **fields)

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
        try:
            if self.is_async:
                value = await self.fn(**kwargs)
            else:  # a thread, so a slow function neither blocks the loop nor escapes the timeout
                value = await asyncio.to_thread(self.fn, **kwargs)
        except ToolError as e:
            return ToolResult(str(e), error=True)
        except Exception as e:  # the function's own failure is news for the model, not a crash
            return ToolResult(f"Error: {type(e).__name__}: {e}", error=True)
        if isinstance(value, ToolResult):
            return value
        return ToolResult(_to_text(value), data=value)


def _has_description(annotation: Any) -> bool:
    for meta in getattr(annotation, "__metadata__", ()):
        if getattr(meta, "description", None):
            return True
    return False


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None,
         description: str | None = None, timeout: float | None = 60.0):
    """Decorator: `@tool` or `@tool(name=..., description=..., timeout=...)`."""
    def wrap(f: Callable[..., Any], localns: dict[str, Any] | None = None) -> FunctionTool:
        # The decorating frame's locals resolve types defined inside a function (PEP 563).
        localns = localns if localns is not None else sys._getframe(1).f_locals
        return FunctionTool(f, name=name, description=description, timeout=timeout,
                            localns=localns)
    return wrap(fn, sys._getframe(1).f_locals) if fn is not None else wrap
