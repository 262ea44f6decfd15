"""/v1/completions with raw Harmony token prompts (the vLLM/SGLang convention)."""
from __future__ import annotations

import httpx

from agent.backends.scripted import ScriptedBackend
from agent.harmony.tokenizer import CALL, RETURN, get_encoding

BODY = "<|channel|>final<|message|>Hello, world!"


def tokens(text: str) -> list[int]:
    return list(get_encoding().encode(text, allowed_special="all"))


def test_token_prompt_in_token_ids_and_text_out(serve):
    backend = ScriptedBackend([BODY + "<|return|>"])
    prompt = tokens("<|start|>user<|message|>hi<|end|><|start|>assistant")
    with serve(backend) as (url, _):
        r = httpx.post(url + "/v1/completions", json={
            "model": "test-model", "prompt": prompt, "max_tokens": 50,
            "skip_special_tokens": False, "return_token_ids": True}).json()
    choice = r["choices"][0]
    assert backend.prompts == [prompt]
    assert choice["token_ids"] == tokens(BODY)  # the stop token is reported, not included
    assert choice["text"] == BODY
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", RETURN)
    assert choice["prompt_token_ids"] == prompt
    assert r["usage"]["prompt_tokens"] == len(prompt)
    assert r["usage"]["completion_tokens"] == len(tokens(BODY)) + 1


def test_official_client_streams_text_without_special_tokens(serve):
    backend = ScriptedBackend([BODY + "<|call|>", BODY + "<|return|>"])
    with serve(backend) as (_, client):
        chunks = list(client.completions.create(model="test-model", prompt=[200006, 1428],
                                                max_tokens=50, stream=True))
        short = client.completions.create(model="test-model", prompt="<|start|>user", max_tokens=3,
                                          stop=["wor"])
    assert "".join(c.choices[0].text for c in chunks) == "finalHello, world!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].model_extra["stop_reason"] == CALL
    assert backend.prompts[1] == tokens("<|start|>user")  # text prompts keep special tokens
    assert short.choices[0].finish_reason == "length"


def test_stop_strings_and_token_ids_and_logprobs(serve):
    backend = ScriptedBackend([BODY + "<|return|>"] * 2, logprob=-0.5)
    with serve(backend) as (_, client):
        by_string = client.completions.create(model="test-model", prompt=[1], max_tokens=50,
                                              stop=", wo", logprobs=1)
        comma = tokens(",")[0]
        by_token = client.completions.create(model="test-model", prompt=[1], max_tokens=50,
                                             extra_body={"stop_token_ids": [comma],
                                                         "return_token_ids": True})
    assert by_string.choices[0].text == "finalHello"
    assert by_string.choices[0].model_extra["stop_reason"] == ", wo"
    assert set(by_string.choices[0].logprobs.token_logprobs) == {-0.5}
    assert by_token.choices[0].model_extra["stop_reason"] == comma
    assert by_token.choices[0].model_extra["token_ids"] == tokens("<|channel|>final<|message|>Hello")
