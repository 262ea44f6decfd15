"""SSE keep-alive: a comment line (`: keep-alive`) on every event stream that has been quiet
for `seconds`, so proxies and clients with read timeouts do not drop a stream whose model is
still prefilling a long prompt (an 8k-token gpt-oss-20b prefill on a CPU is ~100 s of
silence). SSE clients ignore comment lines. An ASGI middleware: it covers every streaming
endpoint without their code knowing.
"""
from __future__ import annotations

import asyncio
import time

KEEP_ALIVE_SECONDS = 15.0
COMMENT = b": keep-alive\n\n"


class KeepAlive:
    def __init__(self, app, seconds: float = KEEP_ALIVE_SECONDS):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.seconds:
            return await self.app(scope, receive, send)
        lock = asyncio.Lock()
        last = time.monotonic()
        ticker: asyncio.Task | None = None

        async def tick():
            nonlocal last
            while True:
                await asyncio.sleep(max(0.0, last + self.seconds - time.monotonic()))
                async with lock:
                    if time.monotonic() - last >= self.seconds:
                        await send({"type": "http.response.body", "body": COMMENT,
                                    "more_body": True})
                        last = time.monotonic()

        async def guarded_send(message):
            nonlocal last, ticker
            ending = message["type"] == "http.response.body" and not message.get("more_body")
            if ending and ticker is not None:
                await _stop(ticker)
                ticker = None
            async with lock:
                await send(message)
                last = time.monotonic()
            if message["type"] == "http.response.start" and _is_event_stream(message):
                ticker = asyncio.create_task(tick())

        try:
            await self.app(scope, receive, guarded_send)
        finally:
            if ticker is not None:
                await _stop(ticker)


def _is_event_stream(start: dict) -> bool:
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip().lower() == b"text/event-stream"
    return False


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)  # its own end (client gone) is no error
