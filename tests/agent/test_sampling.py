"""Sampling defaults come from the checkpoint's generation_config.json (as in Hugging Face):
the embedded model ships `do_sample: false`, so an Agent left at its defaults decodes greedily,
while an explicit temperature still wins."""
from __future__ import annotations

import json

import pytest

from agent.backends.local import LocalBackend
from agent.loop import Agent
from agent.model.config import preset
from agent.model.random import write_random


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-greedy")
    write_random(folder, preset("tiny", vocab_size=201088, eos_token_id=200002, pad_token_id=199999))
    return folder


def completion(backend, prompt, **kwargs):
    return [g.token for g in backend.complete(prompt, max_tokens=12, **kwargs)]


def test_generation_config_sets_the_agents_sampling(tiny):
    prompt = [200006, 1428, 200008, 3575, 200007, 200006, 173781]
    plain = LocalBackend.load(tiny)
    assert plain.sampling_defaults == {}
    assert Agent(plain).sampling(plain) == (1.0, 1.0)  # gpt-oss's recommendation

    (tiny / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    try:
        backend = LocalBackend.load(tiny)
    finally:
        (tiny / "generation_config.json").unlink()
    assert backend.sampling_defaults == {"temperature": 0.0, "top_p": 1.0}
    agent = Agent(backend)
    assert agent.sampling(backend) == (0.0, 1.0)
    greedy = completion(backend, prompt, temperature=0.0)
    # Different seeds, same tokens: the defaults really decode greedily.
    assert completion(backend, prompt, temperature=agent.sampling(backend)[0], seed=1) == greedy
    assert completion(backend, prompt, temperature=agent.sampling(backend)[0], seed=2) == greedy
    assert Agent(backend, temperature=0.7, top_p=0.9).sampling(backend) == (0.7, 0.9)


def test_sampling_values_are_read(tiny, tmp_path):
    from agent.model.config import sampling_defaults
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "top_p": 0.95}))
    assert sampling_defaults(tmp_path) == {"temperature": 0.6, "top_p": 0.95}


def test_the_embedded_model_decodes_greedily_by_default():
    from agent.model import nano
    assert json.loads((nano.path() / "generation_config.json").read_text()) == {"do_sample": False}
