"""JSON Schema -> the TypeScript-like text gpt-oss reads in `namespace functions {...}`.

`to_typescript` follows openai-harmony's rendering rule for rule (descriptions and titles as
`//` comments, optional `?`, `// default:`, string enums as unions, `T[]` arrays, nested
objects, `oneOf` blocks, `nullable`), so plain schemas give token-identical prompts.
`normalize` first rewrites what openai-harmony would print as `any` into those forms:
`$ref` into `$defs`/`definitions` is inlined, `anyOf` becomes `oneOf` (or `T | null` when the
only other choice is null), `allOf` is merged, `const` becomes a one-value enum.
"""
from __future__ import annotations

import json
from typing import Any


def _get(schema: Any, key: str) -> Any:
    return schema.get(key) if isinstance(schema, dict) else None


def _str(schema: Any, key: str) -> str | None:
    value = _get(schema, key)
    return value if isinstance(value, str) else None


def _json(value: Any) -> str:
    """serde_json's compact Display form (what openai-harmony prints for defaults)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_enum(schema: Any) -> bool:
    values = _get(schema, "enum")
    return isinstance(values, list) and bool(values)


def _nullable(schema: Any, type_str: str) -> str:
    if _get(schema, "nullable") is True and "null" not in type_str:
        return f"{type_str} | null"
    return type_str


def _default_comment(schema: Any, quote_enum_strings: bool) -> str | None:
    """`default: ...`: strings quoted raw, except enum strings; other values as JSON."""
    if not isinstance(schema, dict) or "default" not in schema:
        return None
    default = schema["default"]
    if isinstance(default, str) and not _is_enum(schema):
        return f'default: "{default}"'
    if isinstance(default, str) and not quote_enum_strings:
        return f"default: {default}"
    return f"default: {_json(default)}"


def _variant(variant: Any, indent: str, show_desc: bool, quote_enum_strings: bool) -> str:
    """One ` | T // comments` choice of a oneOf."""
    line = f"{indent} | " + _nullable(variant, to_typescript(variant, indent + "   "))
    comments = [_str(variant, "description")] if show_desc else []
    default = _default_comment(variant, quote_enum_strings)
    comments = [c for c in comments + [default] if c]
    return line + (f" // {' '.join(comments)}" if comments else "")


def _top_level_one_of(variants: list, indent: str) -> str:
    return "".join("\n" + _variant(v, indent, _str(v, "description") is not None, True)
                   for v in variants)


def _one_of_property(key: str, optional: str, prop: dict, variants: list, indent: str) -> str:
    """A property whose schema is a oneOf: comments above, one ` | T` line per variant."""
    out = ""
    prop_desc = _str(prop, "description")
    first_desc = _str(variants[0], "description") if variants else None
    desc_above = prop_desc is not None and prop_desc != first_desc
    if desc_above:
        out += f"{indent}// {prop_desc}\n"
    default = _default_comment(prop, quote_enum_strings=False)
    if default:
        out += f"{indent}// {default}\n"
    out += f"{indent}{key}{optional}:\n"
    for i, variant in enumerate(variants):
        desc = _str(variant, "description")
        show = desc is not None and desc != prop_desc and not (i == 0 and desc_above)
        out += _variant(variant, indent, show, quote_enum_strings=False) + "\n"
    return out + f"{indent},\n"


def _object(schema: dict, indent: str) -> str:
    out = ""
    if _str(schema, "description") is not None:
        out += f"{indent}// {schema['description']}\n"
    out += "{\n"
    props = schema.get("properties")
    if isinstance(props, dict):
        listed = schema.get("required")
        required = set(r for r in listed if isinstance(r, str)) if isinstance(listed, list) else set()
        for key, prop in props.items():
            optional = "" if key in required else "?"
            if _str(prop, "title") is not None:
                out += f"{indent}// {prop['title']}\n{indent}//\n"
            has_one_of = isinstance(prop, dict) and "oneOf" in prop
            if not has_one_of and _str(prop, "description") is not None:
                out += f"{indent}// {prop['description']}\n"
            examples = _get(prop, "examples")
            if isinstance(examples, list) and examples:
                out += f"{indent}// Examples:\n"
                out += "".join(f'{indent}// - "{ex}"\n' for ex in examples if isinstance(ex, str))
            if isinstance(_get(prop, "oneOf"), list):
                out += _one_of_property(key, optional, prop, prop["oneOf"], indent)
                continue
            type_str = _nullable(prop, to_typescript(prop, indent + "    "))
            out += f"{indent}{key}{optional}: {type_str},"
            default = None if has_one_of else _default_comment(prop, quote_enum_strings=False)
            out += (f" // {default}" if default else "") + "\n"
    return out + f"{indent}}}"


def to_typescript(schema: Any, indent: str = "") -> str:
    """Render one (already normalized) schema the way openai-harmony does."""
    one_of = _get(schema, "oneOf")
    if isinstance(one_of, list):
        return _top_level_one_of(one_of, indent)
    kind = _get(schema, "type")
    if isinstance(kind, list):
        names = ["number" if k == "integer" else k for k in kind if isinstance(k, str)]
        if names:
            return " | ".join(names)
        return "any"
    if kind == "object":
        return _object(schema, indent)
    if kind == "string":
        values = _get(schema, "enum")
        if isinstance(values, list):
            names = [f'"{v}"' for v in values if isinstance(v, str)]
            if names:
                return " | ".join(names)
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        if isinstance(schema, dict) and "items" in schema:
            return f"{to_typescript(schema['items'], indent)}[]"
        return "Array<any>"
    if kind == "null":  # our extension: openai-harmony prints `any` here
        return "null"
    return "any"


# --- normalization: constructs openai-harmony would print as `any` ---------------------------

def _resolve_ref(ref: str, root: dict) -> Any:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            return _get(root.get(prefix[2:-1]), ref[len(prefix):])
    if ref == "#":
        return root
    return None


def _merge_all_of(parts: list) -> dict:
    merged: dict = {}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            elif key == "required" and isinstance(merged.get(key), list):
                merged[key] = merged[key] + [r for r in value if r not in merged[key]]
            else:
                merged.setdefault(key, value)
    return merged


def normalize(schema: Any, root: Any = None, _seen: tuple = ()) -> Any:
    """Rewrite $ref / anyOf / allOf / const into forms `to_typescript` renders."""
    if not isinstance(schema, dict):
        return schema
    root = schema if root is None else root
    schema = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    if isinstance(schema.get("$ref"), str):
        ref = schema.pop("$ref")
        target = _resolve_ref(ref, root) if ref not in _seen else None
        if not isinstance(target, dict):
            return schema  # unresolvable or recursive: stays `any`
        merged = {**{k: v for k, v in target.items() if k not in ("$defs", "definitions")},
                  **schema}
        return normalize(merged, root, _seen + (ref,))
    if isinstance(schema.get("allOf"), list):
        parts = [normalize(p, root, _seen) for p in schema.pop("allOf")]
        schema = {**_merge_all_of(parts), **schema}
    if isinstance(schema.get("anyOf"), list) and "oneOf" not in schema:
        variants = [normalize(v, root, _seen) for v in schema.pop("anyOf")]
        non_null = [v for v in variants if _get(v, "type") != "null"]
        if len(non_null) == 1 and len(variants) == 2:
            merged = {**non_null[0], **schema, "nullable": True}
            return normalize(merged, root, _seen)
        schema["oneOf"] = variants
    if "const" in schema and "enum" not in schema:
        schema["enum"] = [schema.pop("const")]
        if isinstance(schema["enum"][0], str):
            schema.setdefault("type", "string")
    if isinstance(schema.get("properties"), dict):
        schema["properties"] = {k: normalize(v, root, _seen)
                                for k, v in schema["properties"].items()}
    if "items" in schema:
        schema["items"] = normalize(schema["items"], root, _seen)
    if isinstance(schema.get("oneOf"), list):
        schema["oneOf"] = [normalize(v, root, _seen) for v in schema["oneOf"]]
    return schema


def schema_to_typescript(schema: Any, indent: str = "") -> str:
    """Normalize, then render: the text after `type name = (_: ` in the functions namespace."""
    return to_typescript(normalize(schema), indent)
