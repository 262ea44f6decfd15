"""What every endpoint shares: the engine, the served model's name and context, and the
common path from a Harmony conversation to a queued, decodable generation."""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

from agent.backends.base import sampling_for
from agent.harmony.conversation import render_prompt
from agent.harmony.grammar import GrammarError, constraint_for
from agent.harmony.tokenizer import CALL, ENDOFTEXT, RETURN, get_encoding
from agent.server.auth import API_KEY_SCOPE
from agent.server.conversation import build_messages
from agent.server.decode import OutputDecoder
from agent.server.engine import Engine, Params
from agent.server.errors import ApiError
from agent.server.generation import Generation
from agent.server.schemas import FunctionDef

ASSISTANT_STOPS = (RETURN, CALL, ENDOFTEXT)


def cache_scope(request, salt: str | None):
    """Whose cached prompt prefixes a request may reuse: those of its API key (when the server
    has keys) and its `cache_salt`. None, one scope for all, with neither: a one-user server
    keeps its prefix reuse at no cost."""
    key = request.scope.get(API_KEY_SCOPE)
    return None if key is None and salt is None else (key, salt)


@dataclass
class StoredResponse:
    """What /v1/responses keeps for `previous_response_id`: the conversation after the turn."""
    history: list
    call_names: dict[str, str]


@dataclass
class ServerState:
    engine: Engine
    model_name: str
    max_context: int = 8192
    created: int = field(default_factory=lambda: int(time.time()))
    max_stored: int = 1000
    responses: OrderedDict = field(default_factory=OrderedDict)
    builtin_tools: Any = None  # kinds ("browser", "python") -> a Toolbox of those tools
    mcp_servers: dict = field(default_factory=dict)  # label -> a connected MCPServer (--mcp)

    def check_model(self, name: str) -> None:
        if name != self.model_name:
            raise ApiError(f"The model '{name}' does not exist; this server serves "
                           f"'{self.model_name}'", status=404, param="model",
                           code="model_not_found", type="not_found_error")

    def store(self, response_id: str, stored: StoredResponse) -> None:
        self.responses[response_id] = stored
        while len(self.responses) > self.max_stored:
            self.responses.popitem(last=False)

    def budget(self, prompt_len: int, requested: int | None, param: str) -> int:
        """max_tokens within the context: a prompt that leaves no room, or an explicit
        request past the end, is the client's error (OpenAI: context_length_exceeded)."""
        room = self.max_context - prompt_len
        if room <= 0 or (requested is not None and requested > room):
            asked = f" plus {requested} {param}" if requested is not None else ""
            raise ApiError(f"This model's maximum context length is {self.max_context} tokens; "
                           f"the prompt has {prompt_len} tokens{asked}. Shorten the messages "
                           "or lower the limit.", param="messages" if room <= 0 else param,
                           code="context_length_exceeded")
        return requested if requested is not None else room

    def harmony_generation(self, *, effort: str, instructions: str | None,
                           tools: list[FunctionDef], history: list, tool_choice=None,
                           max_tokens: int | None, max_tokens_param: str,
                           temperature: float | None, top_p: float | None, seed: int | None,
                           stop: Sequence[str] = (), logprobs: bool = False,
                           response_format=None, choice_param: str = "tool_choice",
                           format_param: str = "response_format", builtins=None,
                           cache_scope=None) -> Generation:
        """A queued generation of one assistant turn. On a backend that takes a constraint
        (the in-process runtime) the turn follows the Harmony grammar: only declared tools,
        arguments by their schemas, `tool_choice` and the response format obeyed. Other
        backends get `tool_choice` as a header written for the model. `builtins` is a
        Toolbox of built-in tools (browser, python) the server runs itself; `cache_scope`
        (cache_scope()) limits the prefix it may reuse."""
        namespaces = builtins.namespace_configs() if builtins is not None else ()
        prompt = render_prompt(build_messages(effort, instructions, tools, history,
                                              response_format, namespaces))
        choice = _choice(tool_choice, tools, choice_param, builtins)
        constraint, prefix = None, []
        if getattr(self.engine.backend, "takes_constraint", False):
            budget = self.budget(len(prompt), max_tokens, max_tokens_param)
            recipients = {f"functions.{t.name}": t.parameters or {"type": "object"} for t in tools}
            if builtins is not None:
                recipients.update(builtins.argument_schemas())
            try:
                constraint = constraint_for(
                    recipients, tool_choice=choice if choice in ("auto", "none", "required")
                    else f"functions.{choice}",
                    response_format=response_format.schema_ if response_format else None,
                    budget=budget)
            except GrammarError as exc:
                raise ApiError(f"'{format_param}' cannot be enforced: {exc}".splitlines()[0],
                               param=format_param) from None
        else:
            prefix = list(get_encoding().encode(forced_header(choice), allowed_special="all"))
            budget = self.budget(len(prompt) + len(prefix), max_tokens, max_tokens_param)
        temperature, top_p = sampling_for(self.engine.backend, temperature, top_p)
        params = Params(max_tokens=budget, stop=ASSISTANT_STOPS, temperature=temperature,
                        top_p=top_p, seed=seed, logprobs=logprobs, constraint=constraint,
                        cache_scope=cache_scope)
        decoder = OutputDecoder(stop_strings=list(stop))
        decoder.prime(prefix)
        return Generation(self.engine, prompt + prefix, params, decoder)


def _choice(tool_choice, tools: list[FunctionDef], param: str, builtins=None) -> str:
    """tool_choice -> "auto", "none", "required" or the name of the function that must be
    called."""
    if tool_choice in (None, "auto", "none"):
        return tool_choice or "auto"
    if not tools and not (builtins is not None and tool_choice == "required"):
        raise ApiError(f"'{param}' requires 'tools'", param=param)
    if tool_choice == "required":
        return "required"
    name = tool_choice.function.name if hasattr(tool_choice, "function") else tool_choice.name
    if name not in {t.name for t in tools}:
        raise ApiError(f"'{param}' names function {name!r}, which is not in 'tools'",
                       param=param)
    return name


def forced_header(choice: str) -> str:
    """For a backend without grammars: `required` starts a commentary message to the
    functions namespace (the model picks the name); a named function writes the whole
    header, so only the arguments are generated."""
    if choice in ("auto", "none"):
        return ""
    if choice == "required":
        return "<|channel|>commentary to=functions."
    return f"<|channel|>commentary to=functions.{choice} <|constrain|>json<|message|>"
