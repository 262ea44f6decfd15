"""The request queue: concurrent requests all complete, a client that leaves stops its
generation (streamed or not), and the engine survives both."""
from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from ..conftest import wait_until

HI = [{"role": "user", "content": "Hi!"}]


def test_streaming_client_disconnect_stops_generation(serve, slow_backend):
    backend = slow_backend(delay=0.01)
    with serve(backend, max_context=100_000) as (url, _):
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=10, json={
                "model": "test-model", "messages": HI, "stream": True, "max_tokens": 5000}) as r:
            seen = 0
            for line in r.iter_lines():
                seen += line.startswith("data:")
                if seen >= 5:
                    break
        assert wait_until(lambda: _stable(backend))
        stopped_at = backend.produced
        assert stopped_at < 500, stopped_at  # far below max_tokens: generation was cancelled
        # the engine still serves the next request
        r = httpx.post(url + "/v1/chat/completions", timeout=10,
                       json={"model": "test-model", "messages": HI, "max_tokens": 3})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


def test_non_streaming_client_disconnect_stops_generation(serve, slow_backend):
    backend = slow_backend(delay=0.01)
    with serve(backend, max_context=100_000) as (url, _):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", timeout=0.3,
                       json={"model": "test-model", "messages": HI, "max_tokens": 5000})
        assert wait_until(lambda: _stable(backend))
        assert backend.produced < 500, backend.produced


def _stable(backend) -> bool:
    before = backend.produced
    time.sleep(0.15)
    return backend.produced == before


def test_concurrent_requests_are_queued_and_all_complete(serve, slow_backend):
    backend = slow_backend(delay=0.001)
    with serve(backend) as (url, _):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)

        async def one(i):
            chunks = [c async for c in await client.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": f"req {i}"}],
                max_tokens=10 + i, stream=True, stream_options={"include_usage": True})]
            return chunks[-1].usage.completion_tokens

        async def all_of_them():
            try:
                return await asyncio.gather(*(one(i) for i in range(12)))
            finally:
                await client.close()

        done = asyncio.run(all_of_them())
    assert done == [10 + i for i in range(12)]
    assert backend.calls == 12


def test_a_queued_request_whose_client_left_is_dropped_unrun(serve, slow_backend):
    backend = slow_backend(delay=0.01)
    with serve(backend, max_context=100_000, max_batch=1) as (url, _):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)

        async def both():
            try:
                first = asyncio.create_task(client.chat.completions.create(
                    model="test-model", messages=HI, max_tokens=150, timeout=10))
                await asyncio.sleep(0.1)  # the first is running; the second waits behind it
                with pytest.raises(openai.APITimeoutError):
                    await client.chat.completions.create(model="test-model", messages=HI,
                                                         max_tokens=60, timeout=0.2)
                return await first
            finally:
                await client.close()

        done = asyncio.run(both())
        assert done.usage.completion_tokens == 150
        assert wait_until(lambda: httpx.get(url + "/health").json()["served"] == 2)
    assert backend.calls == 1  # the abandoned one never reached the backend


def test_stepwise_prefill_matches_the_one_call_prefill(tmp_path):
    """The engine's cancellable prefill (steps of prefill.STEP tokens) leaves the cache as
    the runtime's own prefill does: the same greedy tokens and log-probabilities follow."""
    import threading

    from agent.model import load
    from agent.model.config import preset
    from agent.model.random import write_random
    from agent.server.prefill import STEP, prefill
    write_random(tmp_path, preset("tiny", max_position_embeddings=4096))
    model = load(str(tmp_path))
    prompt = [(i * 37) % 1000 for i in range(2 * STEP + 300)]

    def greedy():
        return [(g.token, g.logprob) for g in model.generate(prompt, max_tokens=8,
                                                              temperature=0, logprobs=True)]
    once = greedy()
    model.reset()
    assert prefill(model, prompt, threading.Event()) == 0
    assert model.cache.length() == len(prompt) - 1
    stepped = greedy()
    assert model.last_usage["reused_tokens"] == len(prompt) - 1  # only the last one computed
    assert [t for t, _ in stepped] == [t for t, _ in once]
    assert [lp for _, lp in stepped] == pytest.approx([lp for _, lp in once], abs=1e-4)
    cancelled = threading.Event()
    cancelled.set()
    model.reset()
    assert prefill(model, prompt, cancelled) is None and model.cache.length() == 0


class Everything:
    """A constraint that allows any token and records what it is told."""

    def __init__(self):
        self.told = []

    def mask(self):
        return None

    def advance(self, token):
        self.told.append(token)

    def relax(self, reason):
        pass


def test_requests_that_come_during_a_long_prefill_are_served_between_its_steps(tmp_path):
    """A request queued behind a prompt of several prefill steps gets its answer before the
    long one's first token (it runs in a batch of its own between the steps), and both get
    exactly the tokens they get alone; usage counts each its own."""
    from agent.backends.local import LocalBackend
    from agent.model import load
    from agent.model.config import preset
    from agent.model.random import write_random
    from agent.server.batching import with_batching
    from agent.server.engine import Engine, Finished, Params
    from agent.server.prefill import STEP
    write_random(tmp_path, preset("tiny", max_position_embeddings=8192))
    model = load(str(tmp_path))
    long_prompt = [(i * 37) % 1000 for i in range(4 * STEP + 10)]
    short_prompt = [5, 6, 7, 8, 9]
    alone = {name: [g.token for g in model.generate(p, max_tokens=6, temperature=0)]
             for name, p in (("long", long_prompt), ("short", short_prompt))}
    model.reset()
    engine = Engine(with_batching(LocalBackend(model)), max_batch=4)
    grammar = Everything()  # a grammar that allows every token, told each one written
    events = []

    async def consume(name, handle):
        async for item in handle:
            events.append((name, item))

    async def main():
        params = Params(max_tokens=6, temperature=0.0)
        long_handle = engine.submit(long_prompt, params)
        short_handle = engine.submit(short_prompt, Params(max_tokens=6, temperature=0.0,
                                                          constraint=grammar))
        await asyncio.gather(consume("long", long_handle), consume("short", short_handle))

    asyncio.run(main())
    engine.stop()
    order = [(name, type(item).__name__) for name, item in events]
    assert order.index(("short", "Finished")) < order.index(("long", "Generated"))
    for name in ("long", "short"):
        mine = [item for n, item in events if n == name]
        assert [g.token for g in mine[:-1]] == alone[name]
        finished = mine[-1]
        assert isinstance(finished, Finished) and finished.error is None
        assert finished.usage["generated_tokens"] == 6
    assert grammar.told == alone["short"]  # the side batch kept the request's grammar
    usage = [item for n, item in events if n == "long"][-1].usage
    assert usage["prompt_tokens"] == len(long_prompt) and engine.served == 2
