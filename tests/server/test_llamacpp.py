"""The remote backend against a real llama.cpp server (llama-server) on 127.0.0.1, serving a
random gpt-oss checkpoint with the real vocabulary converted by agent.model.gguf.

llama.cpp ships no binary on any package registry, so this runs where one was built
(kernels/llamacpp/build_llama_bench.sh builds it; point GPT_OSS_AGENT_LLAMA_SERVER at it, or
put llama-server on PATH) and is skipped elsewhere. llama.cpp is the oracle twice: its
tokenizer must read the converted vocabulary exactly as tiktoken does, and its grammar engine
must hold a random model to the GBNF turn frame the agent sends.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from agent.backends.remote import RemoteBackend
from agent.harmony.tokenizer import get_encoding

from .conftest import free_port, wait_until_healthy

SERVER = os.environ.get("GPT_OSS_AGENT_LLAMA_SERVER") or shutil.which("llama-server")
pytestmark = pytest.mark.skipif(not SERVER, reason="no llama-server binary (set "
                                "GPT_OSS_AGENT_LLAMA_SERVER; kernels/llamacpp builds one)")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    from agent.model.config import preset
    from agent.model.gguf import write_gguf
    from agent.model.random import write_random
    folder = tmp_path_factory.mktemp("llamacpp")
    checkpoint = write_random(folder / "ckpt", preset("tiny", vocab_size=201088), "hf", "mxfp4", 0)
    model = write_gguf(checkpoint, folder / "model.gguf")
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(Path(SERVER).resolve().parent)}
    proc = subprocess.Popen([SERVER, "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                             "-t", "1", "-c", "4096", "-np", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url, 60)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


TEXTS = ["Hello, world! What's the weather in Paris?", "  def f(x):\n\treturn x**2  # ok",
         "数字 12345 und Ümläute — ‘quotes’ 🙂\r\n\n", "<|start|>user<|message|>hi<|end|>"]


def test_llamacpp_reads_the_converted_vocabulary_as_tiktoken_does(llama_server):
    enc = get_encoding()
    for text in TEXTS:
        ours = list(enc.encode(text, allowed_special="all"))
        theirs = httpx.post(llama_server + "/tokenize", json={"content": text,
                                                                "parse_special": True}).json()
        back = httpx.post(llama_server + "/detokenize", json={"tokens": ours}).json()
        assert theirs["tokens"] == ours and back["content"] == text


def tools():
    from typing import Literal

    from agent.tools.function import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"{city}: 18 C"

    @tool
    def pick(color: Literal["red", "green"]) -> str:
        """Pick a colour."""
        return color
    return [get_weather, pick]


@pytest.mark.parametrize("sends_grammar", [True, False])
def test_random_model_keeps_the_harmony_frame_under_llamacpps_grammar(llama_server, sends_grammar):
    """Random weights write random tokens. Under the GBNF frame llama.cpp samples only turns
    the agent's parser reads cleanly, and every call names the declared tool; without it the
    same model's output is not Harmony at all."""
    from agent.loop import Agent
    remote = RemoteBackend("llamacpp+" + llama_server)
    remote.sends_grammar = sends_grammar
    agent = Agent(model=remote, tools=tools(), effort="low", min_confidence=None,
                  date=None, max_tokens=160, max_step_tokens=40, max_steps=2, temperature=1.0)
    results = [agent.run(f"weather in city number {seed}, or pick a colour?") for seed in range(8)]
    agent.close()
    assert remote.sends_grammar is sends_grammar
    frame_errors = [e for r in results for e in r.errors
                    if "header" in e or "no tool named" in e or "not a message" in e]
    calls = [call for r in results for call in r.tool_calls]
    declared = {"functions.get_weather", "functions.pick"}
    if sends_grammar:
        assert frame_errors == [] and {c.recipient for c in calls} <= declared, frame_errors
        picks = [json.loads(c.input) for c in calls if c.recipient == "functions.pick"]
        assert picks and all(set(p) == {"color"} and p["color"] in ("red", "green")
                             for p in picks), picks
    else:
        assert frame_errors or {c.recipient for c in calls} - declared


def test_llamacpps_tokenizer_finds_no_special_token_in_untrusted_text(llama_server):
    """llama.cpp parses special tokens in a text prompt, as Ollama does: in the text the
    Ollama backend sends, it must find exactly the special tokens the renderer wrote, none
    from the `<|end|><|start|>assistant...` a tool result printed."""
    from agent.backends.harmony_chat import prompt_text

    from .test_remote_injection import conversation, specials
    prompt = conversation()

    def read(text):
        return httpx.post(llama_server + "/tokenize", json={"content": text,
                                                            "parse_special": True}).json()["tokens"]
    assert specials(read(get_encoding().decode(prompt))) != specials(prompt)  # the attack is real
    assert specials(read(prompt_text(prompt))) == specials(prompt)
