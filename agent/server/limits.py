"""What one request may cost the server before it is parsed: body size and read time.

`BodyLimit` (ASGI middleware) reads the whole request body itself, with a byte cap and a
deadline, before the app sees it: a declared Content-Length over the cap is answered 413 at
once (nothing read), a chunked body is cut off as soon as it passes the cap (413), and a body
that does not arrive in time is answered 408. The app then gets the body from memory, so a
50 MB body is never buffered nor parsed as JSON.

`timed_h11(seconds)` is uvicorn's h11 protocol plus what uvicorn lacks: the request line and
headers must arrive within `seconds` of the connection opening (or of the first byte of the
next request on a kept-alive connection), else the connection is closed with a 408; and every
close in the middle of a request body lingers (as nginx's lingering_close): the server
half-closes, then reads and discards what the client is still sending for up to
LINGER_SECONDS / LINGER_BYTES. Closing at once
while a client is still uploading (a 413 answered before the body) makes the kernel reset
the connection, and the reset can destroy the answer before the client reads it.
"""
from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.server.errors import ApiError, send_error

MAX_BODY_BYTES = 8 * 1024 * 1024
BODY_SECONDS = 30.0
HEADER_SECONDS = 10.0
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    pass


def too_large(limit: int) -> ApiError:
    return ApiError(f"Request body is larger than the server's limit of {limit} bytes",
                    status=413, code="request_too_large")


class BodyLimit:
    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, seconds: float = BODY_SECONDS):
        self.app, self.max_bytes, self.seconds = app, max_bytes, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await send_error(send, too_large(self.max_bytes), close=True)
        try:
            body = await asyncio.wait_for(self._read(receive), self.seconds)
        except _TooLarge:
            return await send_error(send, too_large(self.max_bytes), close=True)
        except asyncio.TimeoutError:
            return await send_error(send, ApiError(
                f"Request body did not arrive within {self.seconds:g} seconds", status=408,
                code="request_timeout"), close=True)
        except _Gone:
            return None
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    """The buffered body once; afterwards the real channel (which reports a disconnect)."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


_TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                b"content-length: 29\r\nconnection: close\r\n\r\nRequest headers took too long")


class _LingeringTransport:
    """The transport as uvicorn sees it: `close()` lingers (see the module's docstring)."""

    def __init__(self, transport, protocol: "_TimedH11"):
        self._transport, self._protocol = transport, protocol

    def close(self) -> None:
        self._protocol.linger()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name):
        return getattr(self._transport, name)


class _TimedH11(H11Protocol):
    header_seconds = HEADER_SECONDS

    def connection_made(self, transport) -> None:
        self._header_timer: asyncio.TimerHandle | None = None
        self._raw, self.lingering, self._discarded = transport, False, 0
        self._linger_timer: asyncio.TimerHandle | None = None
        super().connection_made(_LingeringTransport(transport, self))
        self._arm()

    def linger(self) -> None:
        """While the client is still sending a body: half-close now (the answer goes out,
        then FIN), and close once the client stops sending, or after LINGER_SECONDS.
        Otherwise close at once."""
        if self.lingering or self._raw.is_closing():
            return
        if self.conn.their_state is not h11.SEND_BODY:
            return self._raw.close()
        self.lingering = True
        self._disarm()
        try:
            self._raw.resume_reading()
            self._raw.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            return self._raw.close()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self._raw.close)

    def eof_received(self):
        if self.lingering:
            self._raw.close()
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self.lingering:      # what the client still sends after the answer: discarded
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self._raw.close()
            return
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the request line and headers are in

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_seconds, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.write(_TIMEOUT_408)
            self.transport.close()


def timed_h11(seconds: float = HEADER_SECONDS) -> type:
    """The h11 protocol class for uvicorn.Config(http=...), with this header deadline."""
    return type("TimedH11Protocol", (_TimedH11,), {"header_seconds": seconds})
