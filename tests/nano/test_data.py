"""Training transcripts: token-identical to openai-harmony's rendering (the format oracle),
loss only where the model writes, and tool outputs that really come from running the code."""
from __future__ import annotations

import json
import random

import pytest

from agent.harmony import tokenizer as tk
from agent.harmony.messages import Conversation
from agent.model.nano import data, tasks


def sample_tasks(count: int = 40, seed: int = 5):
    rng = random.Random(seed)
    return [(tasks.random_task(rng), data.random_date(rng), rng.random() < 0.5,
             data.random_instructions(rng)) for _ in range(count)]


def test_transcripts_match_openai_harmony(harmony_encoding):
    from openai_harmony import Conversation as OracleConversation
    from openai_harmony import RenderConversationConfig

    for task, date, browser, instructions in sample_tasks():
        prefix, tokens, _ = data.render_example(task, date, browser, instructions)
        messages = (data.prompt_messages(task, date, browser, instructions)
                    + data.assistant_messages(task))
        oracle = harmony_encoding.render_conversation_for_training(
            OracleConversation.from_json(Conversation.from_messages(messages).to_json()),
            config=RenderConversationConfig(auto_drop_analysis=False))
        assert prefix + tokens == oracle, task.user


def test_loss_covers_exactly_what_the_model_writes():
    task = tasks.arithmetic_task(random.Random(3), "medium")
    _, tokens, mask = data.render_example(task, "2026-01-02", False, None)
    learned = tk.decode([t for t, m in zip(tokens, mask) if m])
    ignored = tk.decode([t for t, m in zip(tokens, mask) if not m])
    assert task.arguments in learned and task.final in learned and task.analysis[0] in learned
    assert task.user in ignored and task.tool_output in ignored
    # the loop writes `<|start|>assistant` after the user and after the tool; the model
    # writes it itself between two of its own messages
    assert learned.count("<|start|>assistant") == 1 + len(task.after)
    assert learned.endswith("<|return|>") and "<|call|>" in learned


@pytest.mark.parametrize("category", ["arithmetic", "unit", "string"])
def test_python_outputs_are_what_python_prints(category, tmp_path):
    import subprocess
    import sys

    rng = random.Random(11)
    for _ in range(10):
        task = tasks.random_task(rng, category=category)
        printed = subprocess.run([sys.executable, "-c", task.arguments], capture_output=True,
                                 text=True, check=True).stdout.strip()
        assert task.tool_output == printed == task.answer
        assert task.answer in task.final or task.final.endswith(task.answer)


def test_function_tasks_copy_request_values_into_json_arguments():
    rng = random.Random(2)
    for _ in range(30):
        task = tasks.random_task(rng, category="function")
        name = task.recipient.removeprefix("functions.")
        spec = next(f for f in task.functions if f.name == name)
        args = json.loads(task.arguments)
        assert set(args) == set(spec.parameters["required"])
        for key, value in args.items():
            shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
            assert f"{key.replace('_', ' ')} {shown}" in task.user
        assert task.answer in task.tool_output and task.answer in task.final


def test_analysis_length_follows_effort():
    rng = random.Random(4)
    lengths = {}
    for effort in tasks.EFFORTS:
        lengths[effort] = sum(len(tk.encode_text(" ".join(t.analysis + t.after)))
                              for t in (tasks.random_task(rng, effort=effort) for _ in range(60)))
    assert lengths["low"] < lengths["medium"] < lengths["high"]


def test_batch_shares_one_system_message():
    prefix, rows = data.sample_batch(random.Random(8), 6)
    assert tk.decode(prefix).startswith("<|start|>system<|message|>")
    assert len({row[2].effort for row in rows}) == 1
    assert all(not tk.decode(row[0]).count("<|start|>system") for row in rows)


def test_closed_vocabulary_gives_each_row_its_count_and_reads_every_transcript():
    """build_vocab's promise, counted independently: spell fresh transcripts of the same mix
    in the vocabulary; every id is in it, the text is unchanged, and each kept token that
    is not forced (bytes, specials, 1-3 digit numbers) occurs at least `min_count` times in
    the transcripts it was built from."""
    from collections import Counter

    from agent.harmony.closed_vocabulary import ClosedVocabulary
    from agent.model.nano.train import build_vocab, spelled
    min_count = 5
    vocab = build_vocab(300, 4, 0.8, min_count)
    vocabulary = ClosedVocabulary(vocab.tolist())
    assert vocabulary.has_bytes
    counts = Counter()
    for ex in data.generate(300, 4, 0.8):
        for part in ("prefix", "tokens"):
            counts.update(vocabulary.spell(ex[part]))
    numbers = {t for n in range(1000) for s in (str(n), f"{n:02d}", f"{n:03d}")
               for t in tk.encode_text(s)}
    free = [t for t in vocab.tolist() if t >= 256 and t < tk.O200K_RANKS and t not in numbers]
    assert free and all(counts[t] >= min_count for t in free)
    for ex in data.generate(50, 99, 0.8):  # other transcripts: spelled, never lost
        tokens, mask = spelled(vocabulary, ex["tokens"], ex["mask"])
        assert set(tokens) <= vocabulary.ids and len(mask) == len(tokens)
        assert tk.decode(tokens) == tk.decode(ex["tokens"])
        assert sum(mask) >= sum(ex["mask"])
