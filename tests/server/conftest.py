"""A real uvicorn server on 127.0.0.1 (free port, in a thread) around any backend."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import openai
import pytest
import uvicorn

from agent.backends.base import Generated, empty_usage
from agent.server.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app, port: int | None = None):
    """Serves `app` until the block ends; yields the base URL (without /v1)."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serving(backend, name: str = "test-model", max_context: int = 4096, **kw):
    """(base URL, openai client) for a server over `backend`."""
    with running(create_app(backend, name, max_context=max_context, **kw)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0,
                               timeout=30)
        try:
            yield url, client
        finally:
            client.close()


class SlowBackend:
    """Generates filler tokens forever (until max_tokens or cancelled), one every `delay`
    seconds, counting them: disconnect and queueing tests watch the count."""

    FILLER = 1234

    def __init__(self, delay: float = 0.01):
        self.delay = delay
        self.produced = 0
        self.calls = 0
        self.last_usage = empty_usage()

    def complete(self, prompt, *, max_tokens, stop=(), temperature=1.0, top_p=1.0, seed=None,
                 logprobs=False):
        self.calls += 1
        for _ in range(max_tokens):
            time.sleep(self.delay)
            self.produced += 1
            yield Generated(self.FILLER, None)


@pytest.fixture
def serve():
    return serving
