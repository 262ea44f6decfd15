"""The Harmony format of gpt-oss: tokenizer, message models, renderer, streaming parser.

    from agent.harmony import Conversation, Message, Role, SystemContent, DeveloperContent
    from agent.harmony import render_conversation_for_completion, StreamParser, parse_completion
    from agent.harmony import TurnDecoder, turn_grammar, GrammarConstraint  # the turn engine
"""
from .grammar import GrammarConstraint, GrammarError, turn_grammar
from .messages import (Author, ChannelConfig, Conversation, DeveloperContent, Message,
                       ReasoningEffort, ResponseFormat, Role, SystemContent, TextContent,
                       ToolDescription, ToolNamespaceConfig)
from .parse import (ContentDelta, MessageDone, MessageStart, ParseError, ParseResult,
                    StreamParser, parse_completion)
from .render import (Renderer, render, render_conversation, render_conversation_for_completion,
                     render_conversation_for_training, stop_tokens,
                     stop_tokens_for_assistant_actions)
from .schema import schema_to_typescript
from .stream import Call, Delta, TurnDecoder, is_tool_call
from .tokenizer import VocabularyError, get_encoding

__all__ = [
    "Author", "ChannelConfig", "Conversation", "DeveloperContent", "Message", "ReasoningEffort",
    "ResponseFormat", "Role", "SystemContent", "TextContent", "ToolDescription",
    "ToolNamespaceConfig", "ContentDelta", "MessageDone", "MessageStart", "ParseError",
    "ParseResult", "StreamParser", "parse_completion", "Renderer", "render",
    "render_conversation", "render_conversation_for_completion",
    "render_conversation_for_training", "stop_tokens", "stop_tokens_for_assistant_actions",
    "schema_to_typescript", "VocabularyError", "get_encoding", "GrammarConstraint", "GrammarError",
    "turn_grammar", "Call", "Delta", "TurnDecoder", "is_tool_call",
]
