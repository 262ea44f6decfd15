"""No special-token text in any message body or delta (parse.py's module doc has the rule),
checked on streams that openai-harmony rendered and then damaged."""
from __future__ import annotations

import re

import openai_harmony as oh
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harmony_cases as hc
from agent.harmony import ContentDelta, MessageDone, StreamParser, parse_completion
from agent.harmony import tokenizer as tk
from agent.harmony.stream import TurnDecoder

MARKER = re.compile(r"<\|[a-z0-9_]*\|>")
SPECIALS = sorted(tk.NAMED_SPECIAL_TOKENS.values()) + [200000, 200001, 200010, 201087]


def rendered(harmony_encoding, *messages) -> list[int]:
    """What a model would sample after `<|start|>assistant`, rendered by openai-harmony."""
    tokens = harmony_encoding.render_conversation(
        hc.conv(*messages), oh.RenderConversationConfig(auto_drop_analysis=False))
    assert tokens[:2] == [tk.START, tk.encode_text("assistant")[0]]
    return tokens[2:-1] + [tk.RETURN]


def bodies(result) -> list[str]:
    return [m.content[0].text for m in result.messages]


def test_spelled_markers_in_a_body_are_dropped_and_reported(harmony_encoding):
    tokens = rendered(harmony_encoding, hc.assistant("write <|end|> and <|call|> as text", "final"))
    result = parse_completion(tokens)
    assert bodies(result) == ["write  and  as text"]
    assert [e.kind for e in result.errors] == ["token", "token"]
    assert "<|end|> written as text" in result.errors[0].reason


@pytest.mark.parametrize("spelled", [False, True])
def test_a_channel_marker_inside_a_body_starts_the_next_message(harmony_encoding, spelled):
    """`final` text running into an analysis header (the `<|end|><|start|>assistant` between
    them lost) parses as the two messages openai-harmony reads from the intact stream."""
    intact = rendered(harmony_encoding, hc.assistant("The answer is 4.", "final"),
                      hc.assistant("print(2 + 2)", "analysis"))
    expected = [m.to_dict() for m in harmony_encoding.parse_messages_from_completion_tokens(
        intact, oh.Role.ASSISTANT)]
    cut = intact.index(tk.END)
    assert intact[cut + 1] == tk.START and intact[cut + 3] == tk.CHANNEL
    damaged = intact[:cut] + intact[cut + 3:]   # drop <|end|><|start|>assistant
    if spelled:
        text = tk.get_encoding().decode(damaged[cut:])
        damaged = damaged[:cut] + tk.get_encoding().encode_ordinary(text.removesuffix("<|return|>")) + [tk.RETURN]
    result = parse_completion(damaged)
    assert [m.to_dict() for m in result.messages] == expected
    assert any(e.kind == "token" for e in result.errors)


def test_lone_angle_brackets_and_pipes_stay_text(harmony_encoding):
    text = "if a <| b or x<y and y|>z: print('<|not a token')"
    result = parse_completion(rendered(harmony_encoding, hc.assistant(text, "final")))
    assert bodies(result) == [text] and not result.errors


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_marker_text_survives_in_any_body_or_delta(harmony_encoding, data):
    """Random special tokens and spelled markers spliced into rendered streams."""
    messages = [hc.assistant("Let me think about <this> | that.", "analysis"),
                hc.assistant('{"city": "Paris"}', "commentary", "functions.get_weather",
                             "<|constrain|>json")]
    tokens = rendered(harmony_encoding, *messages)[:-1] + [tk.CALL]
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(tokens)))
        if data.draw(st.booleans()):
            piece = [data.draw(st.sampled_from(SPECIALS))]
        else:
            name = data.draw(st.sampled_from(list(tk.NAMED_SPECIAL_TOKENS) + ["<|reserved_1|>"]))
            piece = tk.get_encoding().encode_ordinary(data.draw(st.sampled_from(["", "x ", "<"])) + name)
        tokens[at:at] = piece
    parser, decoder = StreamParser(), TurnDecoder()
    shown = [""]  # the deltas of each message, joined
    for token in tokens + [None]:
        events = parser.process(token) if token is not None else parser.finish()
        for event in events:
            if isinstance(event, ContentDelta):
                shown[-1] += event.text
            elif isinstance(event, MessageDone):
                shown.append("")
        for delta in decoder.feed(token) if token is not None else decoder.finish():
            assert not MARKER.search(delta.text), delta.text
    texts = bodies(parser.result()) + [m.content[0].text for m in decoder.messages]
    assert texts[:len(parser.messages)] == shown[:len(parser.messages)]
    for text in texts:
        assert not MARKER.search(text), text
