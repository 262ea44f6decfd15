"""`@tool`: schemas from type hints, rendered as openai-harmony renders them; validation."""
from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal, Optional

import pydantic
import pytest

from agent.tools import Tool, ToolResult, Toolbox, tool
from agent.tools.function import parse_docstring


class Location(pydantic.BaseModel):
    city: str
    country: Optional[str] = None


@tool
def get_weather(location: Location, unit: Literal["celsius", "fahrenheit"] = "celsius",
                days: list[int] = [1],
                note: Annotated[str, pydantic.Field(description="Free text.")] = "",
                limit: Optional[int] = None, mode: int | str = 3) -> dict:
    """Get the weather for a place.

    Args:
        location: Where to look.
        unit: The temperature
            unit to use.
        note: Ignored, the Field description wins.
    """
    return {"city": location.city, "unit": unit, "days": days, "limit": limit}


@tool(name="add", description="Adds two integers.")
async def add_numbers(a: int, b: int) -> int:
    return a + b


def harmony_developer_text(encoding, tools):
    """openai-harmony's rendering of a developer message listing `tools` (the oracle)."""
    from openai_harmony import DeveloperContent, Message, Role, ToolDescription
    content = DeveloperContent.new().with_function_tools(
        [ToolDescription.new(t.name, t.description, t.parameters) for t in tools])
    return encoding.decode_utf8(encoding.render(Message.from_role_and_content(Role.DEVELOPER, content)))


def test_schema_from_type_hints_and_docstring():
    p = get_weather.parameters
    assert get_weather.description == "Get the weather for a place."
    assert p["required"] == ["location"] and p["additionalProperties"] is False
    props = p["properties"]
    assert props["location"] == {"type": "object", "description": "Where to look.",
                                 "properties": {"city": {"type": "string"},
                                                "country": {"type": "string", "nullable": True}},
                                 "required": ["city"], "additionalProperties": False}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert props["unit"]["description"] == "The temperature unit to use."
    assert props["unit"]["default"] == "celsius"
    assert props["days"] == {"type": "array", "items": {"type": "integer"}, "default": [1]}
    assert props["note"]["description"] == "Free text."
    assert props["limit"] == {"type": "integer", "nullable": True}
    assert props["mode"]["type"] == ["integer", "string"]
    text = json.dumps(p)
    assert "$ref" not in text and "$defs" not in text and '"title"' not in text


def test_rendered_schema_equals_openai_harmony(harmony_encoding):
    from agent.harmony.messages import DeveloperContent, Message
    from agent.harmony.render import render
    toolbox = Toolbox([get_weather, add_numbers])
    ours = render(Message.from_role_and_content(
        "developer", DeveloperContent.new().with_function_tools(toolbox.function_descriptions())))
    oracle = harmony_developer_text(harmony_encoding, [get_weather, add_numbers])
    assert harmony_encoding.decode_utf8(ours) == oracle
    # And the TypeScript-like text says what the model needs (read from the oracle).
    assert "// Get the weather for a place.\ntype get_weather = (_: {" in oracle
    assert 'unit?: "celsius" | "fahrenheit", // default: celsius' in oracle
    assert "limit?: number | null," in oracle and "mode?: number | string, // default: 3" in oracle
    assert "// Adds two integers.\ntype add = (_: {\na: number,\nb: number,\n}) => any;" in oracle


def test_calls_validate_and_convert():
    async def go():
        box = Toolbox([get_weather, add_numbers])
        ok = await box.call("functions.get_weather", '{"location": {"city": "Paris"}, "days": [1, 2]}')
        assert not ok.error and json.loads(ok.text) == {"city": "Paris", "unit": "celsius",
                                                         "days": [1, 2], "limit": None}
        assert ok.data["city"] == "Paris"
        assert (await box.call("functions.add", '{"a": 2, "b": 40}')).text == "42"
        bad = await box.call("functions.get_weather", '{"location": {}, "unit": "kelvin"}')
        assert bad.error and bad.text == (
            "Invalid arguments for functions.get_weather: location.city: Field required; "
            "unit: Input should be 'celsius' or 'fahrenheit'.")
        assert "not valid JSON" in (await box.call("functions.add", "{a: 1}")).text
        assert "expected a JSON object" in (await box.call("functions.add", "[1, 2]")).text
        unknown = await box.call("functions.nope", "{}")
        assert unknown.error and "no tool named 'functions.nope'" in unknown.text
        assert "functions.add" in unknown.text
        assert (await box.call("add", '{"a": 1, "b": 1}')).text == "2"  # bare name accepted
        fenced = await box.call("functions.add", '```json\n{"a": 1, "b": 2}\n```')
        assert fenced.text == "3"  # a markdown fence around the JSON is forgiven
        assert box.author_for("add") == "functions.add"
    asyncio.run(go())


def test_exceptions_timeouts_and_return_types():
    class Point(pydantic.BaseModel):
        x: int
        y: int

    @tool
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("the disk is on fire")

    @tool(timeout=0.2)
    async def sleepy() -> str:
        await asyncio.sleep(5)

    @tool
    def point() -> Point:
        return Point(x=1, y=2)

    @tool
    def passthrough() -> ToolResult:
        return ToolResult("custom", data=7)

    async def go():
        box = Toolbox([explode, sleepy, point, passthrough])
        failed = await box.call("functions.explode", "")
        assert failed.error and failed.text == "Error: RuntimeError: the disk is on fire"
        slow = await box.call("functions.sleepy", "{}")
        assert slow.error and "did not finish within 0.2 seconds" in slow.text
        assert (await box.call("functions.point", "{}")).text == '{"x":1,"y":2}'
        assert (await box.call("functions.passthrough", "{}")).data == 7
    asyncio.run(go())


def test_builtin_names_and_bad_signatures_are_refused():
    for name in ("python", "browser"):
        with pytest.raises(ValueError, match=f"reserved for the built-in {name} tool"):
            tool(lambda code: code, name=name)

    def python(code: str) -> str:
        return code
    with pytest.raises(ValueError, match="reserved"):
        tool(python)

    def spread(*args):
        pass
    with pytest.raises(ValueError, match="cannot be described"):
        tool(spread)
    with pytest.raises(ValueError, match="two tools answer to 'functions.add'"):
        Toolbox([add_numbers, add_numbers])


def test_decorated_function_stays_callable_and_plain_functions_register():
    assert get_weather(Location(city="Oslo"))["city"] == "Oslo"

    def shout(text: str) -> str:
        """Upper-cases text."""
        return text.upper()
    box = Toolbox([shout])
    assert box.recipients() == ["functions.shout"]
    assert asyncio.run(box.call("functions.shout", '{"text": "hi"}')).text == "HI"
    assert isinstance(box.get("functions.shout"), Tool)


def test_docstring_styles():
    summary, args = parse_docstring("""Sum things.

    More detail here.

    :param a: first
    :param int b: second
        continued
    :returns: the sum
    """)
    assert summary == "Sum things.\n\nMore detail here."
    assert args == {"a": "first", "b": "second continued"}
    _, google = parse_docstring("""X.

    Args:
        a (int): first one
        b: second: with colon
    Returns:
        nothing
    """)
    assert google == {"a": "first one", "b": "second: with colon"}


def scale_numpy(value: float, factor: float = 2.0) -> float:
    """Scale a number.

    Parameters
    ----------
    value : float
        The number to
        scale.
    factor : float, optional
        How much.

    Returns
    -------
    float
        The product.
    """
    return value * factor


def scale_epydoc(value: float, factor: float = 2.0) -> float:
    """Scale a number.

    @param value: The number to scale.
    @type value: float
    @param factor: How much.
    @return: The product.
    """
    return value * factor


def scale_rest(value: float, factor: float = 2.0) -> float:
    """Scale a number.

    :param value: The number to scale.
    :param factor: How much.
    :returns: The product.
    """
    return value * factor


def scale_google(value: float, factor: float = 2.0) -> float:
    """Scale a number.

    Args:
        value: The number to scale.
        factor: How much.

    Returns:
        The product.
    """
    return value * factor


@pytest.mark.parametrize("fn", [scale_numpy, scale_epydoc, scale_rest, scale_google])
def test_every_docstring_style_lands_in_the_schema(fn, harmony_encoding):
    scale = tool(fn)
    assert scale.description == "Scale a number."  # no section headers, no Returns text
    assert scale.parameters["properties"]["value"]["description"] == "The number to scale."
    assert scale.parameters["properties"]["factor"]["description"] == "How much."
    text = harmony_developer_text(harmony_encoding, [scale])
    assert "// Scale a number.\ntype scale_" in text and "// The number to scale.\nvalue: number," in text
    assert "Parameters" not in text and "----" not in text and "@param" not in text


class TreeNode(pydantic.BaseModel):
    label: str
    children: list["TreeNode"] = []


def test_recursive_and_enum_models_inline():
    import enum

    class Color(str, enum.Enum):
        RED = "red"
        BLUE = "blue"

    def paint(tree: TreeNode, color: Color = Color.RED) -> str:
        return f"{tree.label}:{color.value}:{len(tree.children)}"
    painted = tool(paint)
    props = painted.parameters["properties"]
    assert props["color"] == {"type": "string", "enum": ["red", "blue"], "default": "red"}
    assert props["tree"]["properties"]["children"] == {
        "type": "array", "items": {"type": "object"}, "default": []}
    result = asyncio.run(painted.call("functions.paint", json.dumps(
        {"tree": {"label": "root", "children": [{"label": "leaf"}]}, "color": "blue"})))
    assert result.text == "root:blue:1"
