"""The agent-workload benchmark's transcript (agent/workload.py): each step's prompt extends
the previous one token for token (so both engines' prompt caches can reuse it), and the sizes
are the ones BENCHMARKS.md reports; openai-harmony reads the first prompt's messages."""
from __future__ import annotations

from agent.harmony.tokenizer import get_encoding
from agent.workload import filler, transcript_prompts


def test_each_prompt_extends_the_last_and_the_results_have_their_size():
    first, second, third = transcript_prompts()
    assert second[:len(first)] == first and third[:len(second)] == second
    assert 1400 < len(first) < 1700
    assert len(second) - len(first) > 800 and len(third) - len(second) > 2000
    assert len(get_encoding().encode_ordinary(filler(800, 0))) == 800


def test_openai_harmony_reads_the_first_prompt(harmony_encoding):
    import openai_harmony as oh
    first = transcript_prompts()[0]
    text = get_encoding().decode(first)
    assert text.startswith("<|start|>system<|message|>") and text.endswith("<|start|>assistant")
    assert "namespace functions" in text and "search_orders" in text
    parsed = harmony_encoding.parse_messages_from_completion_tokens(first[:-2], oh.Role.SYSTEM)
    assert [m.author.role for m in parsed] == [oh.Role.SYSTEM, oh.Role.DEVELOPER, oh.Role.USER]
