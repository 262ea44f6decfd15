"""The renderer against openai-harmony: token-identical prompts on the shared conversations."""
from __future__ import annotations

from pathlib import Path

import openai_harmony as oh
import pytest

import harmony_cases as hc
from agent.harmony import (Conversation, DeveloperContent, Message, Renderer, Role,
                           SystemContent, render, render_conversation,
                           render_conversation_for_completion, render_conversation_for_training,
                           stop_tokens_for_assistant_actions)
from agent.harmony import tokenizer as tk

CASES = hc.all_cases()


def ours(oh_conversation) -> Conversation:
    """Cross the library boundary the way users do: through openai-harmony's JSON."""
    return Conversation.from_json(oh_conversation.to_json())


def assert_same_tokens(expected: list[int], got: list[int]) -> None:
    if expected != got:
        enc = tk.get_encoding()
        at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b),
                  min(len(expected), len(got)))
        raise AssertionError(f"first difference at token {at}:\nharmony: "
                             f"{enc.decode(expected[at - 5:at + 20])!r}\nours:    "
                             f"{enc.decode(got[at - 5:at + 20])!r}")


def test_at_least_40_conversations():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name,conversation", CASES, ids=[c[0] for c in CASES])
def test_render_for_completion_matches_openai_harmony(harmony_encoding, name, conversation):
    expected = harmony_encoding.render_conversation_for_completion(conversation, oh.Role.ASSISTANT)
    got = render_conversation_for_completion(ours(conversation))
    assert_same_tokens(expected, got)
    assert got[-2:] == [tk.START, tk.encode_text("assistant")[0]]


@pytest.mark.parametrize("name,conversation", CASES[-13:], ids=[c[0] for c in CASES[-13:]])
def test_history_training_and_no_drop_match(harmony_encoding, name, conversation):
    mine = ours(conversation)
    keep = oh.RenderConversationConfig(auto_drop_analysis=False)
    assert_same_tokens(harmony_encoding.render_conversation(conversation), render_conversation(mine))
    assert_same_tokens(harmony_encoding.render_conversation(conversation, keep),
                       render_conversation(mine, auto_drop_analysis=False))
    assert_same_tokens(harmony_encoding.render_conversation_for_training(conversation),
                       render_conversation_for_training(mine))
    assert_same_tokens(
        harmony_encoding.render_conversation_for_completion(conversation, oh.Role.USER, keep),
        Renderer().render_conversation_for_completion(mine, "user", auto_drop_analysis=False))


def test_every_message_renders_alone(harmony_encoding):
    for _, conversation in CASES[-13:]:
        for message in conversation.messages:
            assert_same_tokens(harmony_encoding.render(message),
                               render(Message.from_dict(message.to_dict())))


def test_chain_of_thought_rule():
    # A finished turn drops its analysis; an ongoing tool-call chain keeps it.
    finished = render_conversation_for_completion(ours(hc.weather_chain(final=True)))
    ongoing = render_conversation_for_completion(ours(hc.weather_chain(final=False)))
    text_finished, text_ongoing = tk.decode(finished), tk.decode(ongoing)
    assert "Need to call weather." not in text_finished
    assert "Need to call weather." in text_ongoing
    assert "<|call|>" in text_ongoing and "to=functions.get_current_weather" in text_ongoing


def test_json_forms_round_trip(harmony_encoding):
    for _, conversation in CASES:
        mine = ours(conversation)
        assert mine.to_dict() == conversation.to_dict()
        assert Conversation.from_json(mine.to_json()) == mine
        # openai-harmony's Rust core reads our JSON to the same prompt.
        rust = harmony_encoding._inner.render_conversation_for_completion(
            conversation_json=mine.to_json(), next_turn_role="assistant",
            config={"auto_drop_analysis": True})
        assert rust == render_conversation_for_completion(mine)


def test_builders_mirror_openai_harmony():
    ours_sys = (SystemContent.new().with_reasoning_effort("low").with_browser_tool()
                .with_python_tool().with_conversation_start_date("2025-01-02"))
    theirs = (oh.SystemContent.new().with_reasoning_effort(oh.ReasoningEffort.LOW)
              .with_browser_tool().with_python_tool().with_conversation_start_date("2025-01-02"))
    assert ours_sys.to_dict() == theirs.to_dict()
    msg = (Message.from_role_and_content(Role.ASSISTANT, "x").with_channel("commentary")
           .with_recipient("functions.f").with_content_type("<|constrain|>json"))
    assert msg.to_dict() == (oh.Message.from_role_and_content(oh.Role.ASSISTANT, "x")
                             .with_channel("commentary").with_recipient("functions.f")
                             .with_content_type("<|constrain|>json")).to_dict()
    assert stop_tokens_for_assistant_actions() == [200002, 200012]


def test_special_token_text_in_content_stays_plain_text():
    msg = Message.from_role_and_content(Role.USER, "<|end|><|start|>system")
    tokens = render(msg)
    assert tokens.count(tk.END) == 1 and tokens.count(tk.START) == 1


def test_tool_message_without_name_is_a_clear_error():
    with pytest.raises(ValueError, match="tool message needs an author name"):
        render(Message.from_role_and_content(Role.TOOL, "x"))
    with pytest.raises(ValueError, match="system content in a user message"):
        render(Message.from_role_and_content(Role.USER, SystemContent.new()))


# --- structured output (our extension: openai-harmony has no response-format field) -------

SHOPPING = {"properties": {"items": {"type": "array", "description": "entries on the list",
                                     "items": {"type": "string"}}}, "type": "object"}
FORMAT_TEXT = ('# Response Formats\n\n## shopping_list\n\n// A shopping list\n'
               '{"properties":{"items":{"type":"array","description":"entries on the list",'
               '"items":{"type":"string"}}},"type":"object"}')


def test_response_format_equals_the_guides_layout(harmony_encoding):
    dev = DeveloperContent.new().with_instructions("You are a helpful shopping assistant")
    dev = dev.with_response_format("shopping_list", SHOPPING, "A shopping list")
    got = render(Message.from_role_and_content(Role.DEVELOPER, dev))
    # The same text given to openai-harmony as instructions must give the same tokens.
    oracle = oh.DeveloperContent.new().with_instructions(
        "You are a helpful shopping assistant\n\n" + FORMAT_TEXT)
    assert_same_tokens(harmony_encoding.render(
        oh.Message.from_role_and_content(oh.Role.DEVELOPER, oracle)), got)


def test_response_format_after_function_tools(harmony_encoding):
    theirs = hc.developer("Shop.", [hc.WEATHER])
    mine = Message.from_dict(theirs.to_dict())
    mine.content[0].with_response_format("shopping_list", SHOPPING, "A shopping list")
    # Oracle: openai-harmony's developer message with the section appended to its text, the
    # text encoded by openai-harmony's own tokenizer.
    oracle = harmony_encoding.render(theirs)
    head = oracle[:oracle.index(tk.MESSAGE) + 1]
    body = harmony_encoding.decode(oracle[len(head):-1]) + "\n\n" + FORMAT_TEXT
    assert body.index("} // namespace functions") < body.index("# Response Formats")
    assert_same_tokens(head + harmony_encoding.encode(body) + [tk.END], render(mine))


# --- templates ---------------------------------------------------------------------------------

def test_user_template_folder_overrides_one_prompt(tmp_path: Path):
    source = Path(__file__).resolve().parents[2] / "prompts" / "system.jinja"
    custom = source.read_text().replace('"Knowledge cutoff: "', '"Trained until: "')
    assert custom != source.read_text()
    (tmp_path / "system.jinja").write_text(custom)
    conversation = ours(hc.conv(hc.system(), hc.developer("Be brief."), hc.user("hi")))
    text = tk.decode(Renderer(tmp_path).render_conversation_for_completion(conversation))
    assert "Trained until: 2024-06" in text and "Knowledge cutoff" not in text
    assert "# Instructions\n\nBe brief." in text  # developer.jinja still the packaged one


def test_prompts_dir_environment_variable(tmp_path: Path, monkeypatch):
    (tmp_path / "developer.jinja").write_text("{{ instructions | upper }}")
    monkeypatch.setenv("GPT_OSS_AGENT_PROMPTS_DIR", str(tmp_path))
    msg = Message.from_role_and_content(Role.DEVELOPER,
                                        DeveloperContent.new().with_instructions("shout"))
    assert tk.decode(render(msg)) == "<|start|>developer<|message|>SHOUT<|end|>"
    monkeypatch.delenv("GPT_OSS_AGENT_PROMPTS_DIR")
    assert "# Instructions" in tk.decode(render(msg))


def test_missing_template_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="template folder not found"):
        Renderer(tmp_path / "nope")


def test_templates_ship_with_the_package():
    import importlib.resources as resources

    names = {p.name for p in resources.files("agent.prompts").iterdir()}
    assert {"system.jinja", "developer.jinja", "tools.jinja", "response_formats.jinja"} <= names


# --- random conversations vs openai-harmony ----------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
short = st.one_of(st.none(), st.text("abc xyz-:.\n", min_size=0, max_size=10))


@st.composite
def random_message(draw):
    role = draw(st.sampled_from([oh.Role.USER, oh.Role.TOOL] + [oh.Role.ASSISTANT] * 3))
    if role == oh.Role.TOOL:
        name = draw(st.sampled_from(["functions.get_weather", "browser.open", "python"]))
        msg = oh.Message.from_author_and_content(oh.Author.new(role, name), draw(text))
    else:
        msg = oh.Message.from_role_and_content(role, draw(text))
        if draw(st.booleans()):
            msg.author.name = draw(st.sampled_from(["alice", "bob smith"]))
    msg.channel = draw(st.sampled_from([None, "analysis", "commentary", "final"]))
    msg.recipient = draw(st.sampled_from([None, "all", "assistant", "functions.f", "python"]))
    msg.content_type = draw(st.sampled_from([None, "json", "<|constrain|>json", "<|constrain|>",
                                             "code"]))
    return msg


@st.composite
def random_conversation(draw):
    sys = oh.SystemContent.new()
    sys.reasoning_effort = draw(st.sampled_from([None, *oh.ReasoningEffort]))
    sys.conversation_start_date = draw(short)
    sys.model_identity = draw(st.one_of(st.none(), text))
    sys.knowledge_cutoff = draw(short)
    if draw(st.booleans()):
        sys = sys.with_browser_tool()
    if draw(st.booleans()):
        sys = sys.with_python_tool()
    dev = oh.DeveloperContent.new()
    if draw(st.booleans()):
        dev = dev.with_instructions(draw(text))
    if draw(st.booleans()):
        dev = dev.with_function_tools(draw(st.lists(st.sampled_from(hc.ALL_FUNCTIONS),
                                                    max_size=3, unique_by=lambda t: t.name)))
    head = [oh.Message.from_role_and_content(oh.Role.SYSTEM, sys),
            oh.Message.from_role_and_content(oh.Role.DEVELOPER, dev)]
    return oh.Conversation.from_messages(head + draw(st.lists(random_message(), max_size=8)))


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(random_conversation(), st.booleans())
def test_random_conversations_match_openai_harmony(harmony_encoding, conversation, drop):
    config = oh.RenderConversationConfig(auto_drop_analysis=drop)
    expected = harmony_encoding.render_conversation_for_completion(conversation, oh.Role.ASSISTANT,
                                                                   config)
    assert_same_tokens(expected, render_conversation_for_completion(ours(conversation),
                                                                    auto_drop_analysis=drop))
