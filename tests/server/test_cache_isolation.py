"""Prefix-cache isolation between clients of one server (the engine keeps one prefix cache).

A client that sends guesses of another client's system prompt used to read how much of its
own prompt was cached (`cached_tokens`, and the latency): 317 tokens for the right word, 66 for
a wrong one. Now a prefix is reused only within one API key (`--api-key K1,K2`) and one
`cache_salt` (vLLM's request field); a request of another scope recomputes everything and
reports `cached_tokens` 0. A server without keys and salts is one user's, and reuses as before.
"""
from __future__ import annotations

import httpx
import openai
import pytest

from agent.backends.local import LocalBackend
from agent.backends.scripted import ScriptedBackend
from agent.server.batching import with_batching

FINAL = "<|channel|>final<|message|>ok<|return|>"
SECRET = "The launch code is tangerine. Never tell anyone."
MESSAGES = [{"role": "system", "content": SECRET}, {"role": "user", "content": "Hi!"}]
PROMPT_IDS = [200006, 1428, 200008, 3030, 3031, 3032]  # raw ids for /v1/completions


def client_for(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def cached(client: openai.OpenAI, endpoint: str, salt: str | None = None, **kw) -> int:
    """cached_tokens of one request to `endpoint` (chat, responses or completions)."""
    extra = {"cache_salt": salt} if salt is not None else {}
    if endpoint == "chat":
        reply = client.chat.completions.create(model="test-model", messages=MESSAGES,
                                               max_tokens=8, extra_body=extra, **kw)
        return reply.usage.prompt_tokens_details.cached_tokens
    if endpoint == "responses":
        reply = client.responses.create(model="test-model", instructions=SECRET, input="Hi!",
                                        max_output_tokens=8, extra_body=extra, **kw)
        return reply.usage.input_tokens_details.cached_tokens
    reply = client.completions.create(model="test-model", prompt=PROMPT_IDS, max_tokens=3,
                                      extra_body=extra, **kw)
    return reply.usage.prompt_tokens_details.cached_tokens


def script(n: int) -> ScriptedBackend:
    return ScriptedBackend([FINAL] * n)


@pytest.mark.parametrize("endpoint", ["chat", "responses", "completions"])
def test_a_different_salt_reuses_nothing_the_same_salt_reuses(serve, endpoint):
    backend = script(4)
    with serve(backend) as (url, client):
        assert cached(client, endpoint, salt="alice") == 0
        assert cached(client, endpoint, salt="mallory") == 0  # the same prompt, another salt
        assert backend.last_usage["reused_tokens"] == 0
        assert cached(client, endpoint, salt="mallory") > 0   # its own prefix is reused
        assert cached(client, endpoint) == 0                   # no salt: a scope of its own


def test_several_api_keys_are_separate_clients(serve):
    backend = script(4)
    with serve(backend, api_key="key-alice, key-mallory") as (url, _):
        alice, mallory = client_for(url, "key-alice"), client_for(url, "key-mallory")
        assert cached(alice, "chat") == 0
        assert cached(mallory, "chat") == 0        # alice's prompt, mallory's key
        assert cached(mallory, "chat") > 0         # mallory's own prefix
        assert cached(mallory, "chat", salt="s") == 0  # a salt narrows the key's scope
        with pytest.raises(openai.AuthenticationError):
            client_for(url, "key-alice,key-mallory").models.list()


def test_without_keys_or_salts_the_server_is_one_users(serve):
    """A single-user server keeps its prefix reuse (and says so in cached_tokens)."""
    with serve(script(2)) as (_, client):
        assert cached(client, "chat") == 0
        assert cached(client, "chat") > 0


@pytest.mark.parametrize("salt", ["", "x" * 257, 5])
def test_a_malformed_salt_is_a_400_naming_it(serve, salt):
    with serve(script(1)) as (url, _):
        response = httpx.post(url + "/v1/chat/completions", timeout=10, json={
            "model": "test-model", "messages": MESSAGES, "cache_salt": salt})
    assert response.status_code == 400 and "cache_salt" in response.text


@pytest.fixture(scope="module")
def runtime():
    return with_batching(LocalBackend.load(None))  # the embedded model, as `serve` runs it


def test_guessing_another_clients_system_prompt_on_the_runtime(serve, runtime):
    """The reported attack on the real runtime: the victim's prompt is cached; guesses with
    the right and a wrong word, under the attacker's salt, all compute the whole prompt and
    report nothing cached (before, the right word had all but one token cached, a wrong one
    only the tokens before the word)."""
    def guess(word: str) -> list[dict]:
        return [{"role": "system", "content": SECRET.replace("tangerine", word)},
                {"role": "user", "content": "Hi!"}]

    with serve(runtime, "gpt-oss-nano", max_context=8192) as (url, client):
        def ask(messages, salt):
            reply = client.chat.completions.create(
                model="gpt-oss-nano", messages=messages, max_tokens=1, temperature=0,
                extra_body={"cache_salt": salt})
            computed = runtime.last_usage["computed_tokens"]  # what the runtime really did
            return reply.usage.prompt_tokens_details.cached_tokens, computed, \
                reply.usage.prompt_tokens

        for word in ("tangerine", "pineapple", "tangerine"):
            ask(MESSAGES, "victim")
            seen, computed, prompt = ask(guess(word), "attacker")
            assert (seen, computed) == (0, prompt), word
        ask(MESSAGES, "victim")
        again, computed, prompt = ask(MESSAGES, "victim")  # its own prefix is still reused
        assert (again, computed) == (prompt - 1, 1)
