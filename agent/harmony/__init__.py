"""The Harmony format of gpt-oss: tokenizer, message models, renderer, streaming parser.

    from agent.harmony import Conversation, Message, Role, SystemContent, DeveloperContent
    from agent.harmony import render_conversation_for_completion, StreamParser, parse_completion
    from agent.harmony import ToolCallConstraint      # strict tool calls while sampling
"""
from .constraint import ToolCallConstraint
from .messages import (Author, ChannelConfig, Conversation, DeveloperContent, Message,
                       ReasoningEffort, ResponseFormat, Role, SystemContent, TextContent,
                       ToolDescription, ToolNamespaceConfig)
from .parse import (ContentDelta, MessageDone, MessageStart, ParseError, ParseResult,
                    StreamParser, parse_completion)
from .render import (Renderer, render, render_conversation, render_conversation_for_completion,
                     render_conversation_for_training, stop_tokens,
                     stop_tokens_for_assistant_actions)
from .schema import schema_to_typescript
from .tokenizer import VocabularyError, get_encoding

__all__ = [
    "Author", "ChannelConfig", "Conversation", "DeveloperContent", "Message", "ReasoningEffort",
    "ResponseFormat", "Role", "SystemContent", "TextContent", "ToolDescription",
    "ToolNamespaceConfig", "ContentDelta", "MessageDone", "MessageStart", "ParseError",
    "ParseResult", "StreamParser", "parse_completion", "Renderer", "render",
    "render_conversation", "render_conversation_for_completion",
    "render_conversation_for_training", "stop_tokens", "stop_tokens_for_assistant_actions",
    "schema_to_typescript", "VocabularyError", "get_encoding", "ToolCallConstraint",
]
