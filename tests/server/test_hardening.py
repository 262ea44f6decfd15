"""Abusive requests against a real server on 127.0.0.1, configured exactly as `serve` runs it
(cli.bind + cli.server: uvicorn, h11 with the header deadline, the app's middleware). Each
attack is a real attempt (raw sockets where a well-behaved client could not send it), bounded
in time; the server must refuse it quickly and keep serving. Last, `--api-key`."""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import httpx
import openai
import pytest

from agent.backends.scripted import ScriptedBackend
from agent.server.app import create_app
from agent.server.auth import API_KEY_ENV
from agent.server.cli import bind, parser, server

from ..conftest import wait_until

HI = [{"role": "user", "content": "Hi!"}]
FINAL_OK = "<|channel|>final<|message|>ok<|return|>"


@contextlib.contextmanager
def hardened(backend, *, header_timeout: float = 10.0, name: str = "test-model", **app_kw):
    app_kw.setdefault("max_context", 100_000)
    app = create_app(backend, name, **app_kw)
    sock = bind("127.0.0.1", 0)
    srv = server(app, header_timeout=header_timeout, log_level="error")
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def client(port: int, timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0,
                         timeout=timeout)


def read_response(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(socket.timeout, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def send_until_answered(sock: socket.socket, piece: bytes, times: int, pause: float = 0.0) -> int:
    """Send `piece` up to `times` times (pausing after each), stopping as soon as the server
    has answered (or closed); returns how many were sent."""
    sent = 0
    with contextlib.suppress(OSError):
        while sent < times:
            sock.sendall(piece)
            sent += 1
            time.sleep(pause)
            sock.settimeout(0.001)
            with contextlib.suppress(socket.timeout):
                if sock.recv(1, socket.MSG_PEEK):
                    break
            sock.settimeout(None)
    return sent


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def error_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])["error"]


# ---- body size --------------------------------------------------------------------------

def test_50_mb_body_is_refused_413_before_it_is_read():
    with hardened(ScriptedBackend([])) as port:
        declared = 50 * 1024 * 1024
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % declared + b'{"model": "test-model", ')
            response = read_response(s, timeout=5)  # the body was never sent: not waited for
        assert status_of(response) == 413, response[:200]
        assert error_body(response)["code"] == "request_too_large"
        assert b"connection: close" in response.lower()

        # a chunked body declares no length: cut off once it passes the cap
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
            sent = send_until_answered(s, piece, times=50)
            response = read_response(s, timeout=5)
        assert status_of(response) == 413
        assert sent < 50  # the server answered while the client was still sending

        # the official client: a 50 MB message is a 413 with OpenAI's error body
        with pytest.raises(openai.APIStatusError) as caught:
            client(port).chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "x" * declared}])
        assert caught.value.status_code == 413
        assert "8388608 bytes" in caught.value.message

        # and the server still serves
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200


def test_body_limit_is_configurable():
    with hardened(ScriptedBackend([FINAL_OK]), max_body_bytes=2000) as port:
        c = client(port)
        with pytest.raises(openai.APIStatusError) as caught:
            c.chat.completions.create(model="test-model",
                                      messages=[{"role": "user", "content": "y" * 3000}])
        assert caught.value.status_code == 413 and "2000 bytes" in caught.value.message
        ok = c.chat.completions.create(model="test-model", messages=HI)
        assert ok.choices[0].message.content == "ok"


# ---- slow clients -----------------------------------------------------------------------

def test_slow_loris_headers_are_timed_out_while_others_are_served():
    with hardened(ScriptedBackend([FINAL_OK]), header_timeout=1.0) as port:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as idle, \
                socket.create_connection(("127.0.0.1", port)) as loris:
            loris.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            closed = None
            for i in range(60):  # one header byte every 0.1 s: never a complete request
                time.sleep(0.1)
                try:
                    loris.sendall(b"X-Slow-%d: a\r\n" % i if i % 10 == 0 else b"")
                    loris.sendall(b"a")
                except OSError:
                    closed = time.monotonic() - started
                    break
                if i == 3:  # meanwhile an ordinary client is served at once
                    reply = client(port, timeout=5).chat.completions.create(
                        model="test-model", messages=HI)
                    assert reply.choices[0].message.content == "ok"
            response = read_response(loris, timeout=2) if closed is None else b""
            idle_response = read_response(idle, timeout=3)
        elapsed = time.monotonic() - started
        assert closed is not None or status_of(response) == 408, response[:100]
        assert elapsed < 4.5, elapsed
        assert status_of(idle_response) == 408  # a connection that never sends a byte


def test_slow_body_is_answered_408():
    with hardened(ScriptedBackend([]), body_seconds=1.0) as port:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            send_until_answered(s, b" ", times=30, pause=0.1)
            response = read_response(s, timeout=3)
        assert status_of(response) == 408, response[:200]
        assert error_body(response)["code"] == "request_timeout"
        assert 0.9 < time.monotonic() - started < 3


def test_huge_headers_and_deep_json_are_400s_at_once():
    with hardened(ScriptedBackend([FINAL_OK])) as port:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
            big = read_response(s, timeout=3)
        deep = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                          content=b'{"model": "test-model", "messages": ' + b"[" * 200_000
                          + b"]" * 200_000 + b"}", headers={"Content-Type": "application/json"})
        assert time.monotonic() - started < 10  # parsing is bounded (a recursion would take minutes or crash)
        assert client(port).chat.completions.create(model="test-model", messages=HI)
    assert status_of(big) == 400  # h11's 16 KB limit on the request line and headers
    assert deep.status_code == 400 and deep.json()["error"]["type"] == "invalid_request_error"


# ---- parameters -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [2**80, 2**63, -(2**63) - 1])
def test_seed_outside_64_bits_is_a_400(seed):
    with hardened(ScriptedBackend([FINAL_OK])) as port:
        c = client(port)
        with pytest.raises(openai.BadRequestError) as caught:
            c.chat.completions.create(model="test-model", messages=HI, seed=seed)
        assert caught.value.body["param"] == "seed"
        with pytest.raises(openai.BadRequestError):
            c.completions.create(model="test-model", prompt=[200006, 1428], seed=seed)
        # the largest one fits
        ok = c.chat.completions.create(model="test-model", messages=HI, seed=2**63 - 1)
        assert ok.choices[0].message.content == "ok"


def tool(name: str, parameters) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def ref_bomb(levels: int) -> dict:
    """A few hundred bytes whose $refs inline to 2**levels objects."""
    defs = {f"d{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"},
                                                        "b": {"$ref": f"#/$defs/d{i + 1}"}}}
            for i in range(levels)}
    defs[f"d{levels}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


BAD_TOOL_SCHEMAS = [
    ({"type": "objekt"}, "not a valid JSON Schema"),
    ({"type": "object", "required": "city"}, "not a valid JSON Schema"),
    ({"type": "object", "properties": {"q": {"type": "string", "pattern": "(["}}},
     "not a valid JSON Schema"),
    ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
      "properties": {"n": {"type": "integer", "exclusiveMinimum": True}}},  # draft-04 form
     "not a valid JSON Schema"),
    (ref_bomb(20), "more than 10000 objects"),
    (nested(100), "nested deeper than 64 levels"),
]


@pytest.mark.parametrize("schema,problem", BAD_TOOL_SCHEMAS)
def test_bad_tool_schema_is_a_400_naming_the_tool(schema, problem):
    good = tool("get_time", {"type": "object", "properties": {}})
    with hardened(ScriptedBackend([])) as port:
        c = client(port)
        started = time.monotonic()
        with pytest.raises(openai.BadRequestError) as chat:
            c.chat.completions.create(model="test-model", messages=HI,
                                      tools=[good, tool("get_weather", schema)])
        with pytest.raises(openai.BadRequestError) as responses:
            c.responses.create(model="test-model", input="hi", tools=[
                {"type": "function", "name": "get_weather", "parameters": schema}])
        assert time.monotonic() - started < 5
    assert chat.value.body["param"] == "tools.1.function.parameters"
    assert responses.value.body["param"] == "tools.0.parameters"
    for caught in (chat, responses):
        assert "'get_weather'" in caught.value.message and problem in caught.value.message


def test_bad_response_format_schema_is_a_400_naming_it():
    with hardened(ScriptedBackend([])) as port:
        c = client(port)
        with pytest.raises(openai.BadRequestError) as chat:
            c.chat.completions.create(model="test-model", messages=HI, response_format={
                "type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": 5}}})
        with pytest.raises(openai.BadRequestError) as responses:
            c.responses.create(model="test-model", input="hi", text={"format": {
                "type": "json_schema", "name": "answer", "schema": ref_bomb(20)}})
    assert chat.value.body["param"] == "response_format.json_schema.schema"
    assert responses.value.body["param"] == "text.format.schema"
    for caught in (chat, responses):
        assert "'answer'" in caught.value.message


@pytest.mark.parametrize("path,extra,param", [
    ("chat", {"tools": [tool(f"t{i}", {"type": "object"}) for i in range(129)]}, "tools"),
    ("chat", {"messages": HI * 4097}, "messages"),
    ("chat", {"stop": ["x" * 513]}, "stop"),
    ("chat", {"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ("chat", {"presence_penalty": 2.5}, "presence_penalty"),
    ("chat", {"frequency_penalty": -3}, "frequency_penalty"),
    ("chat", {"temperature": 2.01}, "temperature"),
    ("chat", {"max_completion_tokens": 0}, "max_completion_tokens"),
    ("chat", {"max_tokens": 2**80}, "max_tokens"),
    ("chat", {"n": 2}, "n"),
    ("responses", {"input": [{"role": "user", "content": "x"}] * 4097}, "input"),
    ("responses", {"max_output_tokens": 0}, "max_output_tokens"),
    ("responses", {"top_p": 1.5}, "top_p"),
    ("completions", {"stop_token_ids": list(range(65))}, "stop_token_ids"),
    ("completions", {"logprobs": 6}, "logprobs"),
    ("completions", {"stop": ["a"] * 5}, "stop"),
])
def test_out_of_range_parameter_is_a_400_naming_it(path, extra, param):
    body = {"chat": {"messages": HI}, "responses": {"input": "hi"},
            "completions": {"prompt": [200006, 1428]}}[path]
    url = {"chat": "/v1/chat/completions", "responses": "/v1/responses",
           "completions": "/v1/completions"}[path]
    with hardened(ScriptedBackend([])) as port:
        r = httpx.post(f"http://127.0.0.1:{port}{url}", timeout=10,
                       json={"model": "test-model", **body, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


# ---- abandoned huge requests ------------------------------------------------------------

def test_5000_tools_abandoned_then_a_normal_request_completes_promptly():
    many = [tool(f"lookup_{i}", {"type": "object", "properties": {"q": {"type": "string"}}})
            for i in range(5000)]
    with hardened(ScriptedBackend([FINAL_OK])) as port:
        started = time.monotonic()
        with pytest.raises((openai.BadRequestError, openai.APITimeoutError)) as caught:
            client(port, timeout=1.0).chat.completions.create(model="test-model", messages=HI,
                                                              tools=many)
        if isinstance(caught.value, openai.BadRequestError):
            assert caught.value.body["param"] == "tools"
        started = time.monotonic()
        reply = client(port).chat.completions.create(model="test-model", messages=HI)
        assert reply.choices[0].message.content == "ok"
        assert time.monotonic() - started < 10  # not the minutes the abandoned prefill would take


@pytest.fixture(scope="module")
def embedded():
    """The default `serve` model (batching as serve wraps it)."""
    from agent.backends.local import LocalBackend
    from agent.server.batching import with_batching
    return with_batching(LocalBackend.load(None))


def long_tools(count: int = 120) -> list[dict]:
    """Within every limit, yet ~60k prompt tokens: minutes of prefill on the embedded model."""
    text = "Looks a record up in the catalogue by its exact name. " * 40
    return [{"type": "function", "function": {
        "name": f"lookup_{i}", "description": text,
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}}}}
        for i in range(count)]


def test_abandoned_long_prefill_does_not_block_the_next_request(embedded):
    with hardened(embedded, name="nano", max_context=131072) as port:
        with pytest.raises(openai.APITimeoutError):
            client(port, timeout=1.0).chat.completions.create(
                model="nano", messages=HI, tools=long_tools(), max_tokens=4)
        started = time.monotonic()
        reply = client(port).chat.completions.create(model="nano", messages=HI, max_tokens=4)
        waited = time.monotonic() - started

        def health():
            return httpx.get(f"http://127.0.0.1:{port}/health").json()
        # the new request may be served beside the abandoned prefill, which is counted once
        # its current step ends
        both = wait_until(lambda: health()["served"] == 2)
        last = health()
    assert reply.usage.completion_tokens >= 1
    assert waited < 8, waited  # without cancellable prefill: minutes
    assert both and last["queued"] == 0 and last["served"] == 2, last


def test_streamed_long_prefill_gets_keep_alives_and_stops_when_abandoned(embedded):
    with hardened(embedded, name="nano", max_context=131072, keep_alive_seconds=0.3) as port:
        lines = []
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                          json={"model": "nano", "messages": HI, "tools": long_tools(),
                                "max_tokens": 4, "stream": True}) as r:
            for line in r.iter_lines():
                lines.append(line)
                if line.startswith(": keep-alive") and len([x for x in lines if x]) >= 3:
                    break
        assert lines[0].startswith("data: ")  # the role chunk, then comments while prefilling
        assert lines.count(": keep-alive") >= 2
        started = time.monotonic()
        reply = client(port).chat.completions.create(model="nano", messages=HI, max_tokens=4)
        assert reply.usage.completion_tokens >= 1
        assert time.monotonic() - started < 8


class WaitsBeforeAnswering:
    """A backend whose first token comes after `delay` seconds (a long prefill)."""
    last_usage: dict = {}

    def __init__(self, delay: float):
        self.delay = delay

    def complete(self, prompt, **_):
        from agent.backends.base import Generated
        from agent.backends.scripted import encode_harmony
        time.sleep(self.delay)
        for token in encode_harmony(FINAL_OK):
            yield Generated(token)


def test_keep_alive_comments_are_ignored_by_the_official_client():
    with hardened(WaitsBeforeAnswering(1.2), keep_alive_seconds=0.25) as port:
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                          json={"model": "test-model", "messages": HI, "stream": True}) as r:
            raw = [line for line in r.iter_lines() if line]
        streamed = list(client(port).chat.completions.create(model="test-model", messages=HI,
                                                             stream=True))
        events = list(client(port).responses.create(model="test-model", input="hi",
                                                    stream=True))
    assert raw.count(": keep-alive") >= 3 and raw[-1] == "data: [DONE]"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "ok"
    assert events[-1].type == "response.completed"


# ---- --api-key --------------------------------------------------------------------------

KEY = "sk-local-7b1e"


def keyed(port: int, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0,
                         timeout=10)


def test_the_right_key_is_served_and_others_get_401():
    with hardened(ScriptedBackend([FINAL_OK]), api_key=KEY) as port:
        good = keyed(port, KEY)
        assert [m.id for m in good.models.list()] == ["test-model"]
        reply = good.chat.completions.create(model="test-model", messages=HI)
        assert reply.choices[0].message.content == "ok"
        for wrong in ("sk-wrong", KEY + "x", KEY[:-1]):
            with pytest.raises(openai.AuthenticationError) as caught:
                keyed(port, wrong).chat.completions.create(model="test-model", messages=HI)
            assert caught.value.status_code == 401
            assert caught.value.body["code"] == "invalid_api_key"
            assert caught.value.body["type"] == "invalid_request_error"
        with pytest.raises(openai.AuthenticationError):
            keyed(port, "sk-wrong").models.list()
        base = f"http://127.0.0.1:{port}"
        missing = httpx.post(base + "/v1/responses", json={"model": "test-model", "input": "hi"})
        basic = httpx.get(base + "/v1/models", headers={"Authorization": f"Basic {KEY}"})
        unknown = httpx.get(base + "/v1/embeddings")  # no key: 401, not a 404 that maps routes
        health = httpx.get(base + "/health")
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]["message"]
    assert basic.status_code == 401 and unknown.status_code == 401
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_no_key_means_no_body_is_read():
    with hardened(ScriptedBackend([]), api_key=KEY) as port:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n{")
            response = read_response(s, timeout=5)
        assert status_of(response) == 401
        assert error_body(response)["code"] == "invalid_api_key"
        assert time.monotonic() - started < 5  # the 4 MB body was never sent: not waited for


def test_key_from_the_environment(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert parser().parse_args([]).api_key == "from-env"
    assert parser().parse_args(["--api-key", "flag"]).api_key == "flag"
    monkeypatch.delenv(API_KEY_ENV)
    assert parser().parse_args([]).api_key is None
