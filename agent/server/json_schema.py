"""Is a client's JSON Schema (tool parameters, a response format) one the server can use?

It must be valid for the draft it declares (`$schema`, else 2020-12), by jsonschema's
`check_schema`, and bounded: the prompt renderer and the grammar inline local `$ref`s, so a
schema of a few hundred bytes whose definitions refer to each other twice per level would
expand to billions of nodes. The walk below expands it the same way (a `$ref` already on the
path is not followed again), counting containers and depth, and stops at the first bound.
"""
from __future__ import annotations

from typing import Any

import jsonschema

MAX_DEPTH = 64          # nesting of objects and arrays, `$ref`s followed
MAX_NODES = 10_000      # objects and arrays after `$ref`s are inlined


def schema_problem(schema: Any) -> str | None:
    """None for a usable schema, else one line saying what is wrong with it."""
    if not isinstance(schema, dict):
        return f"must be a JSON object, got {type(schema).__name__}"
    problem = _size_problem(schema)
    if problem:
        return problem
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as err:
        where = "/".join(str(p) for p in err.absolute_path)
        return f"is not a valid JSON Schema: {err.message}" + (f" (at {where})" if where else "")
    return None


def _target(ref: str, root: dict) -> Any:
    if ref == "#":
        return root
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            table = root.get(prefix[2:-1])
            return table.get(ref[len(prefix):]) if isinstance(table, dict) else None
    return None


def _size_problem(root: dict) -> str | None:
    stack: list[tuple[Any, int, frozenset]] = [(root, 1, frozenset())]
    nodes = 0
    while stack:
        node, depth, seen = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        nodes += 1
        if depth > MAX_DEPTH:
            return f"is nested deeper than {MAX_DEPTH} levels (counting $ref)"
        if nodes > MAX_NODES:
            return f"has more than {MAX_NODES} objects and arrays once its $refs are inlined"
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1, seen) for child in children)
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and ref not in seen:
            stack.append((_target(ref, root), depth + 1, seen | {ref}))
    return None
