"""A real uvicorn server on 127.0.0.1 (free port, in a thread) around any backend."""
from __future__ import annotations

import contextlib
import threading
import time

import openai
import pytest
import uvicorn

from agent.backends.base import Generated, empty_usage
from agent.harmony.tokenizer import get_encoding
from agent.server.app import create_app
from agent.server.loadtest import free_port  # noqa: F401  (test_llamacpp imports it from here)


@contextlib.contextmanager
def serve_command(*args: str, start_timeout: float = 120):
    """`python -m agent serve ARGS` in a subprocess on a free port; yields its base URL."""
    import os
    import subprocess
    import sys
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url, start_timeout)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_healthy(proc, url: str, timeout: float) -> None:
    """Until GET url/health answers 200; the test fails with the server's output if the
    process `proc` (stdout piped, text) exits or the time runs out first."""
    import httpx
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{proc.args[0]} did not start:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.2)


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
    """Answers with a final-channel header and then filler text until max_tokens (or until
    cancelled), one token every `delay` seconds, counting them: disconnect and queueing tests
    watch the count."""

    def __init__(self, delay: float = 0.01):
        self.delay = delay
        self.produced = 0
        self.calls = 0
        self.last_usage = empty_usage()

    def complete(self, prompt, *, max_tokens, stop=(), temperature=1.0, top_p=1.0, seed=None,
                 logprobs=False):
        self.calls += 1
        header = get_encoding().encode("<|channel|>final<|message|>", allowed_special="all")
        filler = get_encoding().encode(" la")
        for i in range(max_tokens):
            time.sleep(self.delay)
            self.produced += 1
            yield Generated(header[i] if i < len(header) else filler[0], None)


@pytest.fixture
def serve():
    return serving


@pytest.fixture(scope="session")
def serve_cli():
    """`serve_cli(*args)`: `python -m agent serve ARGS` in a subprocess (serve_command)."""
    return serve_command


@pytest.fixture(scope="module")
def client(base_url):
    """The official openai client on the server of the module's `base_url` fixture."""
    with openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0,
                       timeout=120) as c:
        yield c


@pytest.fixture
def slow_backend():
    return SlowBackend


@pytest.fixture
def run_app():
    """`run_app(asgi_app, port=None)`: a context manager serving any ASGI app."""
    return running


@pytest.fixture
def port():
    return free_port()
