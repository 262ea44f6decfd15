"""The streaming parser: equal to openai-harmony on valid completions, lenient on broken ones."""
from __future__ import annotations


import openai_harmony as oh
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harmony_cases as hc
from agent.harmony import (ContentDelta, MessageDone, MessageStart, ParseError, Role,
                           StreamParser, parse_completion)
from agent.harmony import tokenizer as tk

enc = tk.encode_text


def completion(harmony_encoding, messages, stop=tk.RETURN):
    """Tokens a model would sample after `<|start|>assistant`, rendered by openai-harmony."""
    tokens = harmony_encoding.render_conversation(
        hc.conv(*messages), oh.RenderConversationConfig(auto_drop_analysis=False))
    assert tokens[:2] == [tk.START, enc("assistant")[0]]
    tokens = tokens[2:]
    if tokens[-1] == tk.END and stop is not None:
        tokens[-1] = stop
    return tokens


def harmony_parse(harmony_encoding, tokens, role=oh.Role.ASSISTANT):
    return [m.to_dict() for m in
            harmony_encoding.parse_messages_from_completion_tokens(tokens, role)]


def ours(tokens, role=Role.ASSISTANT):
    return [m.to_dict() for m in parse_completion(tokens, role).messages]


VALID = [
    ("analysis then final", [hc.assistant("User asks 2+2. Easy.", "analysis"),
                             hc.assistant("2 + 2 = 4.", "final")]),
    ("final only", [hc.assistant("Hello!", "final")]),
    ("function call", [hc.assistant("Need weather.", "analysis"),
                       hc.assistant('{"location": "SF"}', "commentary",
                                    "functions.get_current_weather", "<|constrain|>json")]),
    ("json type without constrain", [hc.assistant('{"a": 1}', "commentary", "functions.f",
                                                  "json")]),
    ("browser call", [hc.assistant("search it", "analysis"),
                      hc.assistant('{"query": "harmony format", "topn": 5}', "analysis",
                                   "browser.search")]),
    ("python call", [hc.assistant("print(sum(range(10)))", "analysis", "python")]),
    ("preamble then call", [hc.assistant("Checking the weather now.", "commentary"),
                            hc.assistant("{}", "commentary", "functions.get_location",
                                         "<|constrain|>json")]),
    ("unicode", [hc.assistant("思考中… 🦜🦜 ünïcödé ∑", "analysis"),
                 hc.assistant("Ответ: 🙂 — done.\n\n```py\nx = 1\n```", "final")]),
    ("many analysis messages", [hc.assistant(f"step {i}", "analysis") for i in range(5)]
     + [hc.assistant("ok", "final")]),
    ("whitespace content", [hc.assistant("  \n\t ", "analysis"), hc.assistant("", "final")]),
]


@pytest.mark.parametrize("name,messages", VALID, ids=[v[0] for v in VALID])
def test_valid_completions_match_openai_harmony(harmony_encoding, name, messages):
    stop = tk.CALL if messages[-1].recipient else tk.RETURN
    tokens = completion(harmony_encoding, messages, stop)
    assert ours(tokens) == harmony_parse(harmony_encoding, tokens)
    result = parse_completion(tokens)
    assert result.stop_token == stop
    assert [e for e in result.errors if e.kind != "header"] == []


def test_stream_starting_with_start_and_tool_messages(harmony_encoding):
    msgs = [hc.assistant("call", "commentary", "functions.f", "<|constrain|>json"),
            hc.tool("functions.f", '{"ok": true}'), hc.assistant("done", "final")]
    tokens = harmony_encoding.render_conversation(
        hc.conv(*msgs), oh.RenderConversationConfig(auto_drop_analysis=False))
    tokens[1 + tokens.index(tk.CALL):1 + tokens.index(tk.CALL)] = []  # keep going past the call
    result = parse_completion(tokens, role=None)
    assert [m.to_dict() for m in result.messages][:1] == harmony_parse(harmony_encoding,
                                                                       tokens, None)[:1]
    # A parser for a prompt that ends in <|start|>assistant stops at the first <|call|>.
    assert result.stop_token == tk.CALL and len(result.messages) == 1


def test_tool_messages_parse_like_openai_harmony(harmony_encoding):
    msgs = [hc.tool("functions.get_weather", '{"t": 20}'), hc.tool("browser.search", "[0] x"),
            hc.tool("python", "2187", None)]
    tokens = harmony_encoding.render_conversation(hc.conv(*msgs))
    assert ours(tokens, role=None) == harmony_parse(harmony_encoding, tokens, None)


def test_truncated_message_is_kept_and_reported(harmony_encoding):
    tokens = completion(harmony_encoding, [hc.assistant("The answer is forty", "final")])[:-1]
    result = parse_completion(tokens)
    assert [m.to_dict() for m in result.messages] == harmony_parse(harmony_encoding, tokens)
    assert result.stop_token is None
    assert [e.kind for e in result.errors] == ["truncated"]


def test_streaming_events_and_utf8_safe_deltas():
    text = "🦜 parrots: 鸚鵡 👩‍👩‍👧 ok"
    body = enc(text)
    # Precondition: some token of the text is not valid UTF-8 on its own.
    pieces = [tk.get_encoding().decode_single_token_bytes(t) for t in body]
    assert any(_invalid_utf8(p) for p in pieces)
    tokens = [tk.CHANNEL] + enc("final") + [tk.MESSAGE] + body + [tk.RETURN]
    parser = StreamParser()
    events = []
    for token in tokens:
        events += parser.process(token)
    events += parser.finish()
    assert isinstance(events[0], MessageStart)
    assert events[0] == MessageStart(Role.ASSISTANT, "final", None, None)
    deltas = [e.text for e in events if isinstance(e, ContentDelta)]
    assert "".join(deltas) == text and all("\ufffd" not in d for d in deltas)
    assert len(deltas) < len(body)  # some tokens waited for the rest of their character
    done = [e for e in events if isinstance(e, MessageDone)]
    assert len(done) == 1 and done[0].message.text == text
    assert parser.stop_token == tk.RETURN and parser.errors == []


def _invalid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def test_delta_carries_channel_and_recipient():
    tokens = ([tk.CHANNEL] + enc("commentary to=functions.f") + [tk.CONSTRAIN]
              + enc("json") + [tk.MESSAGE] + enc('{"x": 1}') + [tk.CALL])
    events = StreamParser().process_all(tokens)
    start = events[0]
    assert start == MessageStart(Role.ASSISTANT, "commentary", "functions.f", "<|constrain|>json")
    assert all(e.recipient == "functions.f" for e in events if isinstance(e, ContentDelta))


# --- real failures: lenient, never raising ---------------------------------------------------

def H(text):  # header/content text as plain (non-special) tokens
    return enc(text)


def parsed(tokens, role=Role.ASSISTANT):
    result = parse_completion(tokens, role)
    return result, [(m.author.role.value, m.channel, m.recipient, m.content_type, m.text)
                    for m in result.messages]


def test_channel_marker_written_as_plain_text(harmony_encoding):
    tokens = H("<|channel|>analysis") + [tk.MESSAGE] + H("thinking") + [tk.END] + \
        [tk.START] + H("assistant<|channel|>final") + [tk.MESSAGE] + H("hi") + [tk.RETURN]
    assert not any(t in tokens[:4] for t in (tk.CHANNEL,))
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "analysis", None, None, "thinking"),
                    ("assistant", "final", None, None, "hi")]
    assert ours(tokens) == harmony_parse(harmony_encoding, tokens)


def test_constrain_written_as_plain_text(harmony_encoding):
    tokens = [tk.CHANNEL] + H("commentary to=functions.f <|constrain|>json") + [tk.MESSAGE] + \
        H('{"a":1}') + [tk.CALL]
    _, msgs = parsed(tokens)
    assert msgs == [("assistant", "commentary", "functions.f", "<|constrain|>json", '{"a":1}')]
    assert ours(tokens) == harmony_parse(harmony_encoding, tokens)


def test_message_marker_written_as_plain_text():
    tokens = [tk.CHANNEL] + H("final<|message|>Hello there") + [tk.RETURN]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "final", None, None, "Hello there")]
    assert any("<|message|> written as plain text" in e.reason for e in result.errors)


def test_channel_name_without_channel_token(harmony_encoding):
    tokens = H("commentary to=functions.get_weather json") + [tk.MESSAGE] + H("{}") + [tk.CALL]
    with pytest.raises(Exception):
        harmony_encoding.parse_messages_from_completion_tokens(tokens, oh.Role.ASSISTANT)
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "commentary", "functions.get_weather", "json", "{}")]
    assert result.errors and result.stop_token == tk.CALL


def test_bare_channel_word_is_a_channel_not_a_recipient():
    result, msgs = parsed(H("analysis") + [tk.MESSAGE] + H("hmm") + [tk.END])
    assert msgs == [("assistant", "analysis", None, None, "hmm")]
    assert any("without <|channel|>" in e.reason for e in result.errors)


def test_recipient_swallowing_a_second_channel(harmony_encoding):
    # `to=functions.f<|channel|>commentary`: openai-harmony would keep the text in the recipient.
    tokens = [tk.CHANNEL] + H("commentary to=functions.f") + [tk.CHANNEL] + H("commentary") + \
        [tk.MESSAGE] + H("{}") + [tk.CALL]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "commentary", "functions.f", None, "{}")]
    tokens = [tk.CHANNEL] + H("analysis to=assistant") + [tk.CHANNEL] + H("analysis") + \
        [tk.MESSAGE] + H("x") + [tk.END]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "analysis", None, None, "x")]
    assert result.errors


def test_recipient_in_the_channel_part():
    tokens = [tk.CHANNEL] + H("to=functions.f") + [tk.MESSAGE] + H("{}") + [tk.CALL]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", None, "functions.f", None, "{}")]
    assert any("written after <|channel|>" in e.reason for e in result.errors)


def test_recipient_with_special_token_text_is_cut():
    tokens = [tk.CHANNEL] + H("commentary to=functions.f<|end|>") + [tk.MESSAGE] + H("{}") + \
        [tk.CALL]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "commentary", "functions.f", None, "{}")]
    assert any("special-token text in recipient" in e.reason for e in result.errors)


@pytest.mark.parametrize("header", ["commentary to=functions.f to=functions.f",
                                    "commentary to=to=functions.f"])
def test_duplicated_to(header):
    tokens = [tk.CHANNEL] + H(header) + [tk.CONSTRAIN] + \
        H("json") + [tk.MESSAGE] + H('{"a": 1}') + [tk.CALL]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "commentary", "functions.f", "<|constrain|>json", '{"a": 1}')]
    assert result.errors


def test_text_after_call_is_ignored():
    tokens = [tk.CHANNEL] + H("commentary to=functions.f") + [tk.MESSAGE] + H("{}") + \
        [tk.CALL] + H("and then some") + [tk.START] + H("assistant") + [tk.END]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "commentary", "functions.f", None, "{}")]
    assert result.stop_token == tk.CALL
    assert [e.kind for e in result.errors] == ["after_stop"]


def test_invalid_json_tool_call_is_kept_and_reported():
    body = '{"location": "SF",}'
    tokens = [tk.CHANNEL] + H("commentary to=functions.get_weather") + [tk.CONSTRAIN] + \
        H("json") + [tk.MESSAGE] + H(body) + [tk.CALL]
    result, msgs = parsed(tokens)
    assert msgs[0][4] == body
    assert [e.kind for e in result.errors] == ["json"]
    assert "functions.get_weather" in result.errors[0].reason
    # python calls carry code, not JSON
    tokens = [tk.CHANNEL] + H("analysis to=python") + [tk.MESSAGE] + H("print(1)") + [tk.CALL]
    assert parse_completion(tokens).errors == []


def test_missing_start_before_channel():
    tokens = [tk.CHANNEL] + H("analysis") + [tk.MESSAGE] + H("a") + [tk.END] + \
        [tk.CHANNEL] + H("final") + [tk.MESSAGE] + H("b") + [tk.RETURN]
    result, msgs = parsed(tokens)
    assert msgs == [("assistant", "analysis", None, None, "a"),
                    ("assistant", "final", None, None, "b")]
    assert [e.kind for e in result.errors] == ["stray"]


def test_start_inside_a_message_and_stray_tokens():
    tokens = [tk.CHANNEL] + H("analysis") + [tk.MESSAGE] + H("a") + [tk.START] + \
        H("assistant") + [tk.CHANNEL] + H("final") + [tk.MESSAGE] + H("b") + [tk.END] + \
        H("junk") + [tk.START] + H("assistant") + [tk.CHANNEL] + H("final") + [tk.MESSAGE] + \
        H("c") + [tk.RETURN]
    result, msgs = parsed(tokens)
    assert [m[4] for m in msgs] == ["a", "b", "c"]
    assert [e.kind for e in result.errors] == ["format", "stray"]


def test_truncated_inside_header_and_header_cut_by_stop():
    result, msgs = parsed([tk.CHANNEL] + H("fin"))
    assert msgs == [("assistant", "fin", None, None, "")]
    assert result.errors[0].kind == "truncated"
    result, msgs = parsed([tk.CHANNEL] + H("final Hello world") + [tk.RETURN])
    assert msgs == [("assistant", "final", None, None, "Hello world")]
    assert result.stop_token == tk.RETURN
    assert parse_completion([]).errors[0].reason == "empty completion"


def test_unknown_header_text_and_unknown_role():
    result, msgs = parsed([tk.CHANNEL] + H("final foo bar baz") + [tk.MESSAGE] + H("x") +
                          [tk.RETURN])
    assert msgs == [("assistant", "final", "bar", "baz", "x")]
    assert any("unknown header text 'foo'" in e.reason for e in result.errors)
    result, msgs = parsed([tk.START] + H("weather_tool") + [tk.MESSAGE] + H("x") + [tk.END],
                          role=None)
    assert msgs == [("tool", None, None, None, "x")]
    assert result.messages[0].author.name == "weather_tool"


def test_endoftext_ends_the_stream():
    result, msgs = parsed([tk.CHANNEL] + H("final") + [tk.MESSAGE] + H("hi") + [tk.END,
                          tk.ENDOFTEXT] + H("more"))
    assert msgs == [("assistant", "final", None, None, "hi")]
    assert result.stop_token is None and [e.kind for e in result.errors] == ["after_stop"]
    result, msgs = parsed([tk.CHANNEL] + H("final") + [tk.MESSAGE] + H("cut") + [tk.ENDOFTEXT])
    assert msgs == [("assistant", "final", None, None, "cut")]
    assert [e.kind for e in result.errors] == ["format"]


def test_out_of_vocabulary_ids_are_errors_not_exceptions():
    result = parse_completion([tk.CHANNEL, -1, 10**9, "x"] + H("final") + [tk.MESSAGE] +
                              H("ok") + [tk.RETURN])
    assert [m.text for m in result.messages] == ["ok"]
    assert [e.kind for e in result.errors] == ["token"] * 3


# --- fuzzing -----------------------------------------------------------------------------------

SPECIALS = [tk.START, tk.END, tk.MESSAGE, tk.CHANNEL, tk.CONSTRAIN, tk.RETURN, tk.CALL,
            tk.STARTOFTEXT, tk.ENDOFTEXT, 200013, 201087]
PLAIN = enc("<|channel|>analysis commentary final to=functions.f json {} \"a\": 🦜 中 <|message|>")
any_token = st.one_of(st.sampled_from(SPECIALS), st.sampled_from(PLAIN),
                      st.integers(0, tk.VOCAB_SIZE - 1))

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
message = st.builds(
    lambda body, channel, recipient, ctype: (body, channel, recipient, ctype),
    text, st.sampled_from(["analysis", "commentary", "final"]),
    st.sampled_from([None, None, "functions.get_weather", "browser.search", "python"]),
    st.sampled_from([None, "json", "<|constrain|>json"]))


def _check_invariants(parser: StreamParser, events: list) -> None:
    done = [e.message for e in events if isinstance(e, MessageDone)]
    assert done == parser.messages
    assert [e for e in events if isinstance(e, ParseError)] == parser.errors
    # Deltas between a start and its done event add up to the message text.
    texts, current = [], None
    for event in events:
        if isinstance(event, MessageStart):
            current = []
        elif isinstance(event, ContentDelta):
            current.append(event.text)
        elif isinstance(event, MessageDone):
            texts.append("".join(current))
    assert texts == [m.text for m in parser.messages]


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.lists(any_token, max_size=60), st.sampled_from([Role.ASSISTANT, None]))
def test_random_token_streams_never_raise(tokens, role):
    parser = StreamParser(role)
    events = parser.process_all(tokens) + parser.finish()
    _check_invariants(parser, events)


@FUZZ
@given(st.lists(message, min_size=1, max_size=4), st.data())
def test_valid_and_mutated_completions(harmony_encoding, msgs, data):
    built = []
    for body, channel, recipient, ctype in msgs:
        built.append(hc.assistant(body, channel, recipient, ctype if recipient else None))
    tokens = completion(harmony_encoding, built, tk.CALL if built[-1].recipient else tk.RETURN)
    # Only the part up to the first stop token is one completion.
    cut = next(i for i, t in enumerate(tokens) if t in (tk.CALL, tk.RETURN))
    tokens = tokens[:cut + 1]
    assert ours(tokens) == harmony_parse(harmony_encoding, tokens)

    mutated = list(tokens)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        at = data.draw(st.integers(0, len(mutated)))
        if op == "insert":
            mutated.insert(at, data.draw(any_token))
        elif mutated and at < len(mutated):
            if op == "delete":
                del mutated[at]
            else:
                mutated[at] = data.draw(any_token)
    parser = StreamParser()
    events = parser.process_all(mutated) + parser.finish()
    _check_invariants(parser, events)
    try:
        theirs = harmony_parse(harmony_encoding, mutated)
    except Exception:
        return
    if not parser.errors:  # where we saw nothing wrong, we must agree with openai-harmony
        assert [m.to_dict() for m in parser.messages] == theirs
