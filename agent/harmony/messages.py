"""Harmony messages as pydantic models, in openai-harmony's JSON form.

`Message.to_dict()` / `Conversation.to_json()` produce exactly what openai-harmony produces
(author flattened into `role`/`name`, content as a list of `{"type": ...}` items), and
`from_dict` / `from_json` accept that form (content may also be a plain string), so
conversations can move between the two libraries as JSON.
"""
from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Role(str, Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    DEVELOPER = "developer"
    TOOL = "tool"


class ReasoningEffort(str, Enum):
    """Spelled as openai-harmony's JSON spells it; `"low"` etc. are accepted too."""
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"

    @classmethod
    def _missing_(cls, value: object):
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.lower():
                    return member
        return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Author(_Model):
    role: Role
    name: Optional[str] = None

    @classmethod
    def new(cls, role: Role | str, name: str) -> "Author":
        return cls(role=role, name=name)


class TextContent(_Model):
    type: Literal["text"] = "text"
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


class ToolDescription(_Model):
    name: str
    description: str = ""
    parameters: Optional[dict] = None

    @classmethod
    def new(cls, name: str, description: str, parameters: dict | None = None) -> "ToolDescription":
        return cls(name=name, description=description, parameters=parameters)


# Descriptions of openai-harmony's built-in tool namespaces (the text gpt-oss was trained on).
BROWSER_DESCRIPTION = (
    "Tool for browsing.\n"
    "The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
    "Cite information from the tool using the following format:\n"
    "`【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\n"
    "Do not quote more than 10 words directly from the tool output.\n"
    "sources=web (default: web)")
PYTHON_DESCRIPTION = (
    "Use this tool to execute Python code in your chain of thought. The code will not be shown "
    "to the user. This tool should be used for internal reasoning, but not for code that is "
    "intended to be visible to the user (e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a "
    "stateful Jupyter notebook environment. python will respond with the output of the "
    "execution or time out after 120.0 seconds. The drive at '/mnt/data' can be used to save "
    "and persist user files. Internet access for this session is UNKNOWN. Depends on the "
    "cluster.")
BROWSER_TOOLS = [
    ToolDescription(
        name="search",
        description="Searches for information related to `query` and displays `topn` results.",
        parameters={"type": "object",
                    "properties": {"query": {"type": "string"},
                                   "topn": {"type": "number", "default": 10},
                                   "source": {"type": "string"}},
                    "required": ["query"]}),
    ToolDescription(
        name="open",
        description=(
            "Opens the link `id` from the page indicated by `cursor` starting at line number "
            "`loc`, showing `num_lines` lines.\n"
            "Valid link ids are displayed with the formatting: `【{id}†.*】`.\n"
            "If `cursor` is not provided, the most recent page is implied.\n"
            "If `id` is a string, it is treated as a fully qualified URL associated with "
            "`source`.\n"
            "If `loc` is not provided, the viewport will be positioned at the beginning of the "
            "document or centered on the most relevant passage, if available.\n"
            "Use this function without `id` to scroll to a new location of an opened page."),
        parameters={"type": "object",
                    "properties": {"id": {"type": ["number", "string"], "default": -1},
                                   "cursor": {"type": "number", "default": -1},
                                   "loc": {"type": "number", "default": -1},
                                   "num_lines": {"type": "number", "default": -1},
                                   "view_source": {"type": "boolean", "default": False},
                                   "source": {"type": "string"}}}),
    ToolDescription(
        name="find",
        description=("Finds exact matches of `pattern` in the current page, or the page given "
                     "by `cursor`."),
        parameters={"type": "object",
                    "properties": {"pattern": {"type": "string"},
                                   "cursor": {"type": "number", "default": -1}},
                    "required": ["pattern"]}),
]


class ToolNamespaceConfig(_Model):
    name: str
    description: Optional[str] = None
    tools: list[ToolDescription] = Field(default_factory=list)

    @classmethod
    def new(cls, name: str, description: str | None, tools: list[ToolDescription]):
        return cls(name=name, description=description, tools=list(tools))

    @classmethod
    def browser(cls) -> "ToolNamespaceConfig":
        return cls(name="browser", description=BROWSER_DESCRIPTION,
                   tools=[t.model_copy(deep=True) for t in BROWSER_TOOLS])

    @classmethod
    def python(cls) -> "ToolNamespaceConfig":
        return cls(name="python", description=PYTHON_DESCRIPTION, tools=[])


class ChannelConfig(_Model):
    valid_channels: list[str]
    channel_required: bool = True

    @classmethod
    def require_channels(cls, channels: list[str]) -> "ChannelConfig":
        return cls(valid_channels=list(channels), channel_required=True)


class _WithTools(_Model):
    """Shared by system and developer content: tool namespaces keyed by name."""
    tools: Optional[dict[str, ToolNamespaceConfig]] = None

    @classmethod
    def new(cls):
        return cls()

    def with_tools(self, ns: ToolNamespaceConfig):
        self.tools = {**(self.tools or {}), ns.name: ns}
        return self


class SystemContent(_WithTools):
    """The system message: identity, dates, reasoning effort, built-in tools, channels."""
    type: Literal["system_content"] = "system_content"
    model_identity: Optional[str] = "You are ChatGPT, a large language model trained by OpenAI."
    reasoning_effort: Optional[ReasoningEffort] = ReasoningEffort.MEDIUM
    conversation_start_date: Optional[str] = None
    knowledge_cutoff: Optional[str] = "2024-06"
    channel_config: Optional[ChannelConfig] = Field(
        default_factory=lambda: ChannelConfig.require_channels(["analysis", "commentary", "final"]))

    def with_model_identity(self, model_identity: str) -> "SystemContent":
        self.model_identity = model_identity
        return self

    def with_reasoning_effort(self, effort: ReasoningEffort | str) -> "SystemContent":
        self.reasoning_effort = ReasoningEffort(effort)
        return self

    def with_conversation_start_date(self, date: str) -> "SystemContent":
        self.conversation_start_date = date
        return self

    def with_knowledge_cutoff(self, cutoff: str) -> "SystemContent":
        self.knowledge_cutoff = cutoff
        return self

    def with_channel_config(self, channel_config: ChannelConfig) -> "SystemContent":
        self.channel_config = channel_config
        return self

    def with_required_channels(self, channels: list[str]) -> "SystemContent":
        return self.with_channel_config(ChannelConfig.require_channels(channels))

    def with_browser_tool(self) -> "SystemContent":
        return self.with_tools(ToolNamespaceConfig.browser())

    def with_python_tool(self) -> "SystemContent":
        return self.with_tools(ToolNamespaceConfig.python())

    def to_dict(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json", exclude_none=True), "type": "system_content"}


class ResponseFormat(_Model):
    """A structured-output format (our extension; openai-harmony 0.0.8 has no field for it).

    Rendered at the end of the developer message as the Harmony guide describes:
    `# Response Formats` / `## name` / `// description` / the JSON schema.
    """
    name: str
    description: Optional[str] = None
    schema_: dict = Field(alias="schema")
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class DeveloperContent(_WithTools):
    """The developer message: instructions, function tools, structured-output formats."""
    type: Literal["developer_content"] = "developer_content"
    instructions: Optional[str] = None
    response_formats: Optional[list[ResponseFormat]] = None

    def with_instructions(self, instructions: str) -> "DeveloperContent":
        self.instructions = instructions
        return self

    def with_function_tools(self, tools: list[ToolDescription]) -> "DeveloperContent":
        return self.with_tools(ToolNamespaceConfig(name="functions", tools=list(tools)))

    def with_response_format(self, name: str, schema: dict,
                             description: str | None = None) -> "DeveloperContent":
        fmt = ResponseFormat(name=name, description=description, schema=schema)
        self.response_formats = [*(self.response_formats or []), fmt]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json", exclude_none=True, by_alias=True),
                "type": "developer_content"}


Content = Annotated[Union[TextContent, SystemContent, DeveloperContent],
                    Field(discriminator="type")]


def _as_content(content: Any) -> Any:
    return TextContent(text=content) if isinstance(content, str) else content


def _system_json(item: Any) -> Any:
    """In the JSON form an absent system field means None (as openai-harmony's Rust core reads
    it), not the Python default: `to_dict()` leaves out None fields, so this round-trips."""
    if isinstance(item, str):
        return {"type": "text", "text": item}
    if isinstance(item, dict) and item.get("type") == "system_content":
        return {**{name: None for name in SystemContent.model_fields if name != "type"}, **item}
    return item


class Message(_Model):
    author: Author
    content: list[Content] = Field(default_factory=list)
    channel: Optional[str] = None
    recipient: Optional[str] = None
    content_type: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _accept_harmony_json(cls, data: Any) -> Any:
        # openai-harmony flattens the author into role/name and may give content as a string.
        if isinstance(data, dict):
            data = dict(data)
            if "author" not in data and "role" in data:
                data["author"] = {"role": data.pop("role"), "name": data.pop("name", None)}
            content = data.get("content")
            if isinstance(content, str):
                data["content"] = [{"type": "text", "text": content}]
            elif isinstance(content, list):
                data["content"] = [_system_json(c) for c in content]
        return data

    @classmethod
    def from_author_and_content(cls, author: Author, content: str | Content) -> "Message":
        return cls(author=author, content=[_as_content(content)])

    @classmethod
    def from_role_and_content(cls, role: Role | str, content: str | Content) -> "Message":
        return cls.from_author_and_content(Author(role=role), content)

    @classmethod
    def from_role_and_contents(cls, role: Role | str, contents: list) -> "Message":
        return cls(author=Author(role=role), content=[_as_content(c) for c in contents])

    def adding_content(self, content: str | Content) -> "Message":
        self.content = [*self.content, _as_content(content)]
        return self

    def with_channel(self, channel: str | None) -> "Message":
        self.channel = channel
        return self

    def with_recipient(self, recipient: str | None) -> "Message":
        self.recipient = recipient
        return self

    def with_content_type(self, content_type: str | None) -> "Message":
        self.content_type = content_type
        return self

    @property
    def role(self) -> Role:
        return self.author.role

    @property
    def text(self) -> str:
        """All text content joined (system/developer content contributes nothing)."""
        return "".join(c.text for c in self.content if isinstance(c, TextContent))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.author.role.value, "name": self.author.name,
                               "content": [c.to_dict() for c in self.content]}
        for key in ("channel", "recipient", "content_type"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Message":
        return cls.model_validate(data)


class Conversation(_Model):
    messages: list[Message] = Field(default_factory=list)

    @classmethod
    def from_messages(cls, messages) -> "Conversation":
        return cls(messages=list(messages))

    def __iter__(self):
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Conversation":
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, payload: str | bytes) -> "Conversation":
        return cls.model_validate(json.loads(payload))
