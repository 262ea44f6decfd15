"""Undoing `Content-Encoding` while the body streams, never making more than is asked for.

A few hundred bytes of `gzip, gzip` can stand for gigabytes of zeros, so each layer inflates in
steps of at most STEP bytes (zlib's `max_length`), hands each step to the next layer before
inflating more, and stops once it has made `limit` bytes. Work and memory then follow the size
cap, not the size the sender claims. Only the stdlib's encodings are offered (gzip, deflate).
"""
from __future__ import annotations

import zlib
from typing import Iterator

ACCEPT = "gzip, deflate"
GZIP = 16 + zlib.MAX_WBITS
MAX_LAYERS = 3
STEP = 64 * 1024


class DecodingError(ValueError):
    """A body that cannot be decoded; the message is one line for the model."""


class _Inflater:
    """One gzip or deflate layer, fed compressed bytes, yielding bounded pieces."""

    def __init__(self, name: str):
        self.name = name
        self.inflate = zlib.decompressobj(GZIP) if name in ("gzip", "x-gzip") else None
        self.head = b""  # deflate: the first bytes, until the zlib header can be told apart
        self.made = 0

    def pieces(self, data: bytes) -> Iterator[bytes]:
        if self.inflate is None:
            # "deflate" is zlib-wrapped by the RFC; some servers send raw deflate instead.
            self.head += data
            if len(self.head) < 2:
                return
            data, self.head = self.head, b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self.inflate = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        while not self.inflate.eof:  # bytes after the end of the stream are ignored
            try:
                out = self.inflate.decompress(data, STEP)
            except zlib.error as e:
                raise DecodingError(f"the {self.name} content encoding is corrupt ({e})") from None
            data = self.inflate.unconsumed_tail
            if not out and not data:
                return
            self.made += len(out)
            yield out


class Decoder:
    """The layers of one response, undone last-applied first; `over` is set when any layer
    made more than `limit` bytes (the caller then has a truncated body)."""

    def __init__(self, header: str, limit: int):
        names = [n.strip().lower() for n in header.split(",")]
        names = [n for n in names if n and n != "identity"]
        for name in names:
            if name not in ("gzip", "x-gzip", "deflate"):
                raise DecodingError(f"unsupported content encoding {name!r} "
                                    "(the browser accepts gzip and deflate)")
        if len(names) > MAX_LAYERS:
            raise DecodingError(f"too many content encodings ({len(names)} layers, "
                                f"at most {MAX_LAYERS})")
        self.layers = [_Inflater(name) for name in reversed(names)]
        self.limit = limit
        self.over = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces for one chunk of the raw body (lazily: stop iterating to stop)."""
        yield from self._through(0, data)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self.layers):
            yield data
            return
        layer = self.layers[i]
        for piece in layer.pieces(data):
            yield from self._through(i + 1, piece)
            if self.over or layer.made > self.limit:
                self.over = True
                return
