"""Client mistakes come back as OpenAI-style 4xx bodies; failures never hang a stream."""
from __future__ import annotations

import httpx
import openai
import pytest

from agent.backends.scripted import ScriptedBackend

HI = [{"role": "user", "content": "Hi!"}]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]


def test_invalid_json_is_a_400(serve):
    with serve(ScriptedBackend([])) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", content=b'{"model": "test-model", "mess',
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    err = error_of(r)
    assert err["type"] == "invalid_request_error" and "JSON" in err["message"]


def test_unknown_model_is_a_404(serve):
    with serve(ScriptedBackend([])) as (_, client):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-17", messages=HI)
    assert caught.value.body["code"] == "model_not_found"
    assert "gpt-17" in caught.value.body["message"]


def test_context_too_long_is_a_400(serve):
    backend = ScriptedBackend([])
    with serve(backend, max_context=200) as (_, client):
        with pytest.raises(openai.BadRequestError) as long_prompt:
            client.chat.completions.create(model="test-model",
                                           messages=[{"role": "user", "content": "word " * 400}])
        with pytest.raises(openai.BadRequestError) as long_answer:
            client.chat.completions.create(model="test-model", messages=HI, max_tokens=5000)
        with pytest.raises(openai.BadRequestError) as long_raw:
            client.completions.create(model="test-model", prompt=[1] * 300)
    for caught in (long_prompt, long_answer, long_raw):
        assert caught.value.body["code"] == "context_length_exceeded"
        assert "200 tokens" in caught.value.body["message"]
    assert long_answer.value.body["param"] == "max_tokens"
    assert backend.prompts == []  # nothing reached the model


@pytest.mark.parametrize("extra,param", [
    ({"temperature": 7}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"n": 3}, "n"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
])
def test_bad_parameter_is_a_400_naming_it(serve, extra, param):
    with serve(ScriptedBackend([])) as (url, _):
        r = httpx.post(url + "/v1/chat/completions",
                       json={"model": "test-model", "messages": HI, **extra})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == param


def test_bad_messages_are_400s(serve):
    with serve(ScriptedBackend([])) as (url, _):
        empty = httpx.post(url + "/v1/chat/completions", json={"model": "test-model", "messages": []})
        role = httpx.post(url + "/v1/chat/completions",
                          json={"model": "test-model", "messages": [{"role": "wizard", "content": "x"}]})
        orphan = httpx.post(url + "/v1/chat/completions", json={
            "model": "test-model", "messages": HI + [{"role": "tool", "tool_call_id": "nope", "content": "1"}]})
        streamed = httpx.post(url + "/v1/chat/completions",
                              json={"model": "test-model", "messages": HI, "stream": True,
                                    "temperature": -1})
    assert [r.status_code for r in (empty, role, orphan, streamed)] == [400] * 4
    assert error_of(empty)["param"] == "messages"
    assert error_of(role)["param"].startswith("messages.0.role")
    assert "nope" in error_of(orphan)["message"]
    assert error_of(streamed)["param"] == "temperature"  # a 400, not an event stream


def test_unknown_endpoint_and_wrong_body_types(serve):
    with serve(ScriptedBackend([])) as (url, _):
        missing = httpx.post(url + "/v1/embeddings", json={})
        not_object = httpx.post(url + "/v1/completions", json=[1, 2])
        bad_tokens = httpx.post(url + "/v1/completions",
                                json={"model": "test-model", "prompt": [1, 300000]})
    assert missing.status_code == 404 and error_of(missing)["type"] == "not_found_error"
    assert not_object.status_code == 400
    assert bad_tokens.status_code == 400 and "300000" in error_of(bad_tokens)["message"]


class Exploding:
    """A backend that fails after two tokens (a runtime error mid-generation)."""
    last_usage: dict = {}

    def complete(self, prompt, **_):
        from agent.backends.base import Generated
        yield Generated(1000)
        yield Generated(1001)
        raise RuntimeError("CUDA out of memory (simulated)")


def test_backend_failure_ends_the_stream_with_an_error_event(serve):
    with serve(Exploding()) as (url, client):
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=10,
                          json={"model": "test-model", "messages": HI, "stream": True}) as r:
            lines = [line for line in r.iter_lines() if line]
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="test-model", messages=HI)
    assert r.status_code == 200
    assert lines[-1] == "data: [DONE]"
    assert "out of memory" in lines[-2] and '"error"' in lines[-2]
