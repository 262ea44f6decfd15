"""`python -m agent serve` in a subprocess on the real in-process runtime (a random tiny
gpt-oss checkpoint with the full Harmony vocabulary: gibberish text, real protocol)."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import httpx
import openai
import pytest

HI = [{"role": "user", "content": "Hi!"}]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from agent.harmony.tokenizer import VOCAB_SIZE
    from agent.model.config import preset
    from agent.model.random import write_random
    out = tmp_path_factory.mktemp("tiny-full-vocab")
    write_random(out, preset("tiny", vocab_size=VOCAB_SIZE, max_position_embeddings=1024))
    return out


@pytest.fixture(scope="module")
def server(tiny_checkpoint, serve_cli):
    with serve_cli("--model", str(tiny_checkpoint), "--served-model-name", "tiny",
                       "--threads", "1", start_timeout=60) as url:
        yield url


def test_chat_on_the_runtime_with_prefix_reuse(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key="x", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["tiny"]
    first = client.chat.completions.create(model="tiny", messages=HI, max_tokens=4, seed=1)
    again = client.chat.completions.create(model="tiny", messages=HI, max_tokens=4, seed=1)
    assert first.usage.completion_tokens == again.usage.completion_tokens <= 4
    assert first.choices[0].finish_reason in ("length", "stop", "tool_calls")
    # the runtime keeps the conversation's prefix: everything but the last prompt token
    # (recomputed for its logits) is reused by the second request
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    # a fixed seed gives the same sample
    assert first.choices[0].message == again.choices[0].message
    stream = list(client.chat.completions.create(model="tiny", messages=HI, max_tokens=3,
                                                 stream=True))
    assert stream[-1].choices[0].finish_reason is not None


def test_waiting_requests_are_batched(server):
    client = openai.AsyncOpenAI(base_url=server + "/v1", api_key="x", max_retries=0, timeout=60)
    before = httpx.get(server + "/health").json()

    async def burst():
        try:
            return await asyncio.gather(*(client.completions.create(
                model="tiny", prompt=[200006, 1428, 200008, 3030 + i], max_tokens=3,
                extra_body={"ignore_eos": True}) for i in range(4)))
        finally:
            await client.close()

    results = asyncio.run(burst())
    after = httpx.get(server + "/health").json()
    assert [r.usage.completion_tokens for r in results] == [3] * 4
    assert after["served"] - before["served"] == 4
    assert after["batches"] > before["batches"]  # the three that waited ran as one batch


def test_bad_model_path_is_one_line_and_exit_3(tmp_path):
    run = subprocess.run([sys.executable, "-m", "agent", "serve", "--model",
                          str(tmp_path / "nothing-here"), "--port", "0"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 3
    assert run.stderr.strip().count("\n") == 0 and "nothing-here" in run.stderr
    assert run.stderr.startswith("error: cannot load the model: ")


def test_broken_model_folders_are_one_line_like_the_cli(tmp_path, capsys):
    """The same line as `python -m agent --model DIR` prints, and no traceback (both run
    in-process here: main() returns the exit code)."""
    from agent.run import main as cli_main
    from agent.model.config import preset
    from agent.model.random import write_random
    from agent.server.cli import main as serve_main
    write_random(tmp_path / "good", preset("tiny"))
    config = json.loads((tmp_path / "good" / "config.json").read_text())
    weights = next((tmp_path / "good").glob("*.safetensors")).read_bytes()
    cases = {"bad-json": ("{", weights),
             "wrong-type": ({**config, "num_hidden_layers": "x"}, weights),
             "truncated": (config, weights[: len(weights) // 2])}
    for name, (cfg, data) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        (folder / "model.safetensors").write_bytes(data)
        assert serve_main(["--model", str(folder), "--port", "0"]) == 3, name
        served = capsys.readouterr().err
        assert served.count("\n") == 1 and served.startswith("error: cannot load the model: ")
        assert cli_main(["--model", str(folder), "hi"]) == 3
        assert served in capsys.readouterr().err, name


def test_port_in_use_is_one_line_before_anything_else(capsys):
    from agent.server.cli import main as serve_main
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_main(["--port", str(port)]) == 2
    out = capsys.readouterr()
    assert out.err == f"serve: address 127.0.0.1:{port} is already in use\n"
    assert out.out == ""
