"""Training data for the nano model: tasks (tasks.py) -> Harmony transcripts rendered with the
project's own renderer (agent.harmony) -> token ids with a loss mask on assistant tokens.

A transcript is what the agent loop produces when the task is solved:
  system (effort, date, python [+ browser] tools), developer (function tools, optional
  instructions), user, assistant analysis, assistant tool call (`python` on analysis, or
  `functions.NAME` on commentary with <|constrain|>json) ending in <|call|>, the tool's
  message, more analysis, assistant final ending in <|return|>.
The loss covers everything the model generates: each assistant message, except the
`<|start|>assistant` the loop itself appends before sampling after a user/tool message.

    python -m agent.model.nano.data OUT.pt --examples 100000 --seed 0
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace

import torch

from agent.harmony import tokenizer as tk
from agent.harmony.messages import (Author, DeveloperContent, Message, ReasoningEffort, Role,
                                    SystemContent, ToolDescription, ToolNamespaceConfig)
from agent.harmony.render import default_renderer, drop_analysis, has_function_tools
from agent.model.nano import realistic
from agent.model.nano.tasks import EFFORTS, Task, random_task

FOLLOW_UP_SHARE = 0.5  # of realistic sessions: the last turn refers to an earlier one
INSTRUCTIONS = ("You are a helpful assistant.", "Answer concisely.",
                "Use the tools when they help.", "Be precise and brief.")


def sandboxed_python() -> ToolNamespaceConfig:
    """The python section as the agent's sandboxed tool writes it (its timeout, drive and
    network sentence), not openai-harmony's default wording."""
    from agent.tools.python.tool import DESCRIPTION
    return ToolNamespaceConfig(name="python", tools=[], description=DESCRIPTION.format(
        timeout="30.0", drive="/mnt/data", network="Internet access for this session is disabled."))


def system_message(effort: str, date: str | None, browser: bool,
                   python: bool | str = True) -> Message:
    """python: True (openai-harmony's wording), "sandbox" (the agent's sandboxed tool), False."""
    content = SystemContent.new().with_reasoning_effort(ReasoningEffort(effort))
    if date:
        content = content.with_conversation_start_date(date)
    if browser:
        content = content.with_tools(ToolNamespaceConfig.browser())
    if python:
        content = content.with_tools(sandboxed_python() if python == "sandbox"
                                     else ToolNamespaceConfig.python())
    return Message.from_role_and_content(Role.SYSTEM, content)


def developer_message(task: Task, instructions: str | None) -> Message | None:
    if not task.functions and not instructions:
        return None
    content = DeveloperContent.new()
    if instructions:
        content = content.with_instructions(instructions)
    if task.functions:
        content = content.with_function_tools([
            ToolDescription.new(f.name, f.description, parameters=f.parameters)
            for f in task.functions])
    return Message.from_role_and_content(Role.DEVELOPER, content)


def prompt_messages(task: Task, date: str | None = None, browser: bool = True,
                    instructions: str | None = None, python: bool | str = True) -> list[Message]:
    messages = [system_message(task.effort, date, browser, python)]
    developer = developer_message(task, instructions)
    if developer is not None:
        messages.append(developer)
    return messages + [Message.from_role_and_content(Role.USER, task.user)]


def tool_message(task: Task) -> Message:
    """The tool's reply as the agent loop writes it: author = the called tool."""
    channel = "analysis" if task.recipient == "python" else "commentary"
    return (Message.from_author_and_content(Author.new(Role.TOOL, task.recipient),
                                            task.tool_output)
            .with_recipient("assistant").with_channel(channel))


def assistant_messages(task: Task) -> list[Message]:
    """What the model writes (and the tool answers) after the user message."""
    def say(text: str, channel: str) -> Message:
        return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)

    out = [say(text, "analysis") for text in task.analysis]
    if task.recipient is not None:
        if task.recipient == "python":
            call = say(task.arguments, "analysis").with_recipient("python")
        else:
            call = (say(task.arguments, "commentary").with_recipient(task.recipient)
                    .with_content_type("<|constrain|>json"))
        out += [call, tool_message(task)]
        out += [say(text, "analysis") for text in task.after]
    return out + [say(task.final, "final")]


def random_date(rng: random.Random) -> str | None:
    if rng.random() < 0.15:
        return None
    return f"{rng.randint(2024, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def random_instructions(rng: random.Random) -> str | None:
    return rng.choice(INSTRUCTIONS) if rng.random() < 0.25 else None


def render_example(task: Task, date: str | None, browser: bool, instructions: str | None,
                   python: bool | str = True, history: list[Task] = (),
                   keep_analysis: bool = False
                   ) -> tuple[list[int], list[int], list[bool]]:
    """-> (system-message tokens, rest of the transcript, loss mask over the rest).

    `history`: earlier turns of a session (their tasks' functions are declared too), shown as
    the loop shows them: earlier analysis dropped as openai-harmony drops it (the first step
    of a turn), or kept (`keep_analysis`: the steps after a tool call). Loss: this turn only."""
    renderer = default_renderer()
    if history:
        declared = {}
        for t in [*history, task]:
            for f in t.functions:
                declared.setdefault(f.name, f)
        task = replace(task, functions=list(declared.values()))
    prompt = prompt_messages(task, date, browser, instructions, python)
    earlier = []
    for turn in history:
        earlier += [Message.from_role_and_content(Role.USER, turn.user)] + assistant_messages(turn)
    if earlier and not keep_analysis:
        earlier = drop_analysis(earlier)
    prompt = prompt[:-1] + earlier + prompt[-1:]
    transcript = prompt + assistant_messages(task)
    functions = has_function_tools(transcript)
    prefix = renderer.render(prompt[0], functions)
    tokens: list[int] = []
    mask: list[bool] = []
    previous = None
    learn_from = len(prompt) - 1  # the current user message
    for i, message in enumerate(transcript[1:], start=1):
        ids = renderer.render(message, functions)
        if message.author.role == Role.ASSISTANT and message.channel == "final" and i >= learn_from:
            ids[-1] = tk.RETURN
        if message.author.role == Role.ASSISTANT and i >= learn_from:
            # after a user/tool message the loop appends `<|start|>assistant` itself
            skip = 2 if previous != Role.ASSISTANT else 0
            mask += [False] * skip + [True] * (len(ids) - skip)
        else:
            mask += [False] * len(ids)
        tokens += ids
        previous = message.author.role
    return prefix, tokens, mask


def draw_task(rng: random.Random, realistic_share: float, **kwargs) -> Task:
    """A task from the realistic generator (realistic.py) or the original one (tasks.py)."""
    source = realistic.random_task if rng.random() < realistic_share else random_task
    return source(rng, **kwargs)


def sample_batch(rng: random.Random, size: int, realistic_share: float = 0.0,
                 session_share: float = 0.0, effort_weights=None) -> tuple[list[int], list[tuple]]:
    """`size` transcripts that share one system message (effort, date, tools), so the
    trainer computes it once: -> (system tokens, [(tokens, mask, task), ...]).
    `realistic_share` of the tasks come from realistic.py; `session_share` of the rows are
    the last turn of a 2-3 turn session (each turn a new task); `effort_weights` for
    low/medium/high (default: equal; the agent's router mostly picks low)."""
    effort = rng.choices(EFFORTS, effort_weights)[0] if effort_weights else rng.choice(EFFORTS)
    date = random_date(rng)
    browser, with_functions = rng.random() < 0.5, rng.random() < 0.6
    # sometimes no python section (an agent started without tools): still use python; with
    # realistic tasks mostly the wording of the agent's own sandboxed tool
    python = rng.random() < 0.9
    if python and rng.random() < 0.8 * realistic_share:
        python = "sandbox"
    prefix, rows = None, []
    for _ in range(size):
        task = draw_task(rng, realistic_share, effort=effort, with_functions=with_functions)
        history = []
        if rng.random() < session_share:
            history = [draw_task(rng, realistic_share, effort=rng.choice(EFFORTS),
                                 with_functions=with_functions)
                       for _ in range(rng.choice((1, 1, 2)))]
            if rng.random() < realistic_share * FOLLOW_UP_SHARE:  # the last turn needs the earlier
                *earlier, task = realistic.follow_up(rng, effort)
                history = history[:rng.randrange(len(history) + 1)] + earlier
        prefix, tokens, mask = render_example(task, date, browser, random_instructions(rng),
                                              python, history, rng.random() < 0.5)
        rows.append((tokens, mask, task))
    return prefix, rows


def generate(count: int, seed: int, realistic_share: float = 0.0) -> list[dict]:
    """`count` independent examples (for the vocabulary and statistics)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        task = draw_task(rng, realistic_share)
        prefix, tokens, mask = render_example(task, random_date(rng), rng.random() < 0.5,
                                              random_instructions(rng))
        examples.append({"prefix": prefix, "tokens": tokens, "mask": mask,
                         "category": task.category})
    return examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.time()
    examples = generate(args.examples, args.seed)
    torch.save({"seed": args.seed, "examples": examples}, args.out)
    lengths = sorted(len(e["tokens"]) for e in examples)
    print(f"{len(examples)} examples in {time.time() - start:.0f}s; suffix tokens median "
          f"{lengths[len(lengths) // 2]}, max {lengths[-1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
