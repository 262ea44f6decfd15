"""Request bodies of the OpenAI-compatible endpoints, validated with pydantic.

Only the fields the server acts on are declared; unknown fields are ignored (clients send
many optional extras), but a declared field with a bad value is a 400 naming that field.
Every number has its range and every list its length (OpenAI's limits where it has them:
128 tools, 4 stop sequences, top_logprobs <= 20), and every schema a client sends is checked
as JSON Schema (json_schema.py), so nothing unbounded reaches the renderer or the model.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo,
                      field_validator, model_validator)

from agent.server.json_schema import schema_problem

Effort = Literal["low", "medium", "high"]
FUNCTION_NAME = r"^[A-Za-z0-9_\-.]{1,64}$"
MAX_TOOLS = 128
MAX_MESSAGES = 4096       # messages or input items of one request
MAX_STOP = 4
MAX_STOP_CHARS = 512      # the stop matcher holds back up to this many characters
MAX_STOP_TOKEN_IDS = 64
INT64 = dict(ge=-2**63, le=2**63 - 1)
MAX_GRAMMAR_CHARS = 2_000_000  # a turn grammar of MAX_TOOLS large schemas fits


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _effort(value: Any) -> Any:
    # OpenAI's newest models also accept "minimal"; gpt-oss's lowest level is "low".
    return "low" if value == "minimal" else value


def _stops(value: Any) -> Any:
    stops = [value] if isinstance(value, str) else value or []
    if len(stops) > MAX_STOP:
        raise ValueError(f"at most {MAX_STOP} stop sequences")
    if any(len(stop) > MAX_STOP_CHARS for stop in stops):
        raise ValueError(f"a stop sequence has at most {MAX_STOP_CHARS} characters")
    return value


def _json_schema(what: str):
    """A field validator: the value is None or a usable JSON Schema (the message names
    the tool or format, from the model's `name` field)."""
    def check(cls, value, info: ValidationInfo):
        if value is None:
            return value
        problem = schema_problem(value)
        if problem:
            name = info.data.get("name")
            raise ValueError(f"{what} {name!r}: its schema {problem}" if name
                             else f"the schema {problem}")
        return value
    return check


# ---- shared pieces -----------------------------------------------------------------------

class FunctionDef(_Body):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    _schema = field_validator("parameters")(_json_schema("function"))


class JsonSchemaFormat(_Body):
    name: str = Field(default="response", pattern=FUNCTION_NAME)
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    _schema = field_validator("schema_")(_json_schema("response format"))


class ResponseFormat(_Body):
    """Chat `response_format`: text, json_object, or json_schema {name, schema}."""
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def structured(self) -> JsonSchemaFormat | None:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs 'json_schema'")
        if self.type == "json_object":
            return JsonSchemaFormat(name="json_object", schema={"type": "object"})
        return self.json_schema


class TextFormat(_Body):
    """Responses `text.format`: the same choices, with the schema fields inline."""
    type: Literal["text", "json_object", "json_schema"]
    name: str = Field(default="response", pattern=FUNCTION_NAME)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    _schema = field_validator("schema_")(_json_schema("response format"))

    def structured(self) -> JsonSchemaFormat | None:
        if self.type == "text":
            return None
        if self.type == "json_object":
            return JsonSchemaFormat(name="json_object", schema={"type": "object"})
        return JsonSchemaFormat(name=self.name, description=self.description,
                                schema=self.schema_ or {})


class TextConfig(_Body):
    format: TextFormat | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class SamplingFields(_Body):
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, **INT64)
    # accepted for compatibility (the runtime does not apply them), but only in range
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="one choice per request")
    # vLLM's field: only requests with the same salt (and API key) share cached prefixes
    cache_salt: str | None = Field(default=None, min_length=1, max_length=256)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# ---- /v1/chat/completions ----------------------------------------------------------------

class TextPart(_Body):
    type: Literal["text", "input_text", "output_text"]
    text: str


class ToolCallFunction(_Body):
    name: str
    arguments: str = ""


class ToolCall(_Body):
    id: str = ""
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatTool(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(SamplingFields):
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    tools: list[ChatTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    reasoning_effort: Effort | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None

    _norm_effort = field_validator("reasoning_effort", mode="before")(_effort)
    _stop_list = field_validator("stop")(_stops)


# ---- /v1/responses -----------------------------------------------------------------------

class InputMessage(_Body):
    type: Literal["message"] = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content


class FunctionCallItem(_Body):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    id: str | None = None


class FunctionCallOutputItem(_Body):
    type: Literal["function_call_output"]
    call_id: str
    output: str


class ReasoningText(_Body):
    type: str = "reasoning_text"
    text: str


class ReasoningItem(_Body):
    type: Literal["reasoning"]
    content: list[ReasoningText] | None = None
    summary: list[ReasoningText] | None = None


def _item_kind(raw: Any) -> str:
    kind = raw.get("type", "message") if isinstance(raw, dict) else getattr(raw, "type", "message")
    return kind if kind in ("message", "function_call", "function_call_output", "reasoning") \
        else "unsupported"


class UnsupportedItem(_Body):
    type: str

    @field_validator("type")
    @classmethod
    def _refuse(cls, v):
        raise ValueError(f"input item type {v!r} is not supported")


InputItem = Annotated[Union[
    Annotated[InputMessage, Tag("message")],
    Annotated[FunctionCallItem, Tag("function_call")],
    Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Annotated[ReasoningItem, Tag("reasoning")],
    Annotated[UnsupportedItem, Tag("unsupported")],
], Discriminator(_item_kind)]


BUILTIN_TOOLS = {"web_search": "browser", "web_search_preview": "browser",
                 "browser_search": "browser", "code_interpreter": "python"}


class ResponsesTool(_Body):
    """A function tool, a built-in the server runs itself (web search through the browser,
    code_interpreter through the sandboxed python), or the tools of an MCP server it was
    started with (agent/server/mcp_tools.py)."""
    type: Literal["function", "web_search", "web_search_preview", "browser_search",
                  "code_interpreter", "mcp"]
    name: str | None = Field(default=None, pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    server_label: str | None = None
    server_url: str | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: str | dict[str, Any] | None = None

    _schema = field_validator("parameters")(_json_schema("function"))

    @model_validator(mode="after")
    def _named(self):
        if self.type == "function" and not self.name:
            raise ValueError("a function tool needs 'name'")
        if self.type == "mcp" and not self.server_label:
            raise ValueError("an mcp tool needs 'server_label'")
        return self

    def allowed_tool_names(self) -> set[str] | None:
        """allowed_tools as names (a list, or OpenAI's {"tool_names": [...]}); None: all."""
        allowed = self.allowed_tools
        if isinstance(allowed, dict):
            allowed = allowed.get("tool_names")
        return None if allowed is None else {str(name) for name in allowed}


class ReasoningConfig(_Body):
    effort: Effort | None = None
    summary: str | None = None

    _norm_effort = field_validator("effort", mode="before")(_effort)


class ResponsesToolChoice(_Body):
    type: Literal["function"]
    name: str


class ResponsesRequest(SamplingFields):
    model: str
    input: str | Annotated[list[InputItem], Field(max_length=MAX_MESSAGES)]
    instructions: str | None = None
    tools: list[ResponsesTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | ResponsesToolChoice | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    previous_response_id: str | None = None
    store: bool = True
    text: TextConfig | None = None


# ---- /v1/completions (raw Harmony tokens) -------------------------------------------------

class StructuredOutputs(_Body):
    """vLLM's `structured_outputs`; of its forms only `grammar` (an llguidance Lark grammar,
    as vLLM's guidance backend reads it) is followed."""
    grammar: str | None = Field(default=None, max_length=MAX_GRAMMAR_CHARS)

    @model_validator(mode="before")
    @classmethod
    def _only_grammar(cls, value: Any) -> Any:
        other = sorted(k for k in value or {} if k != "grammar") if isinstance(value, dict) else []
        if other:
            raise ValueError(f"only 'grammar' is supported, not {', '.join(other)}")
        return value


class CompletionRequest(SamplingFields):
    model: str
    prompt: list[int] | str = Field(
        description="Harmony token ids (or text, encoded with special tokens allowed)")
    max_tokens: int = Field(default=16, ge=1)
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = Field(default=None, max_length=MAX_STOP_TOKEN_IDS)
    ignore_eos: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False
    skip_special_tokens: bool = True
    return_token_ids: bool = False
    structured_outputs: StructuredOutputs | None = None

    _stop_list = field_validator("stop")(_stops)

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v):
        if len(v) == 0:
            raise ValueError("prompt is empty")
        if isinstance(v, list) and any(t < 0 for t in v):
            raise ValueError("token ids must be non-negative")
        return v

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v):
        if v:
            raise ValueError("echo is not supported")
        return v
