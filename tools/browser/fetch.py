"""Fetching pages for the browser: httpx with limits, and no requests to private addresses.

Every hop of a redirect chain is checked, so a public page cannot bounce the browser to
127.0.0.1 or a cloud metadata address. IPv6 forms that carry an IPv4 address (mapped
::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4, Teredo) are checked as that
IPv4 address. The check is made where the connection is: each name is resolved once, every
address checked, and the socket connected to a checked address (PinnedBackend), so a DNS server
that answers differently the second time (rebinding) cannot redirect the request. The body is
decoded here, bounded while it streams (content_encoding.py), and binary bodies are refused
whatever their content type.
"""
from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable
from urllib.parse import urljoin, urlparse

import httpcore
import httpx

from agent.tools.browser.content_encoding import ACCEPT, Decoder, DecodingError

USER_AGENT = "Mozilla/5.0 (compatible; gpt-oss-agent browser)"
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


class FetchError(Exception):
    """A page could not be fetched; the message is for the model."""


@dataclass
class Document:
    url: str            # after redirects
    status: int
    content_type: str   # e.g. "text/html", lowercase, no parameters
    text: str
    truncated: bool     # the body was longer than the size cap


# File signatures worth naming; any other binary body is "binary data".
SIGNATURES = [(b"\x89PNG\r\n\x1a\n", "PNG image"), (b"GIF8", "GIF image"),
              (b"\xff\xd8\xff", "JPEG image"), (b"%PDF-", "PDF document"),
              (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip data"),
              (b"\x7fELF", "ELF executable"), (b"\xfd7zXZ\x00", "xz data"),
              (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"), (b"\x28\xb5\x2f\xfd", "Zstandard data"),
              (b"OggS", "Ogg media"), (b"wOFF", "WOFF font"), (b"wOF2", "WOFF2 font")]
# The WHATWG MIME sniffing standard's binary data bytes: no text contains them.
BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
SNIFF_BYTES = 8192


def binary_kind(body: bytes, charset: str | None = None) -> str | None:
    """What a body is when it is not text ("PNG image", "binary data"), else None."""
    head = body[:SNIFF_BYTES]
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    wide = (charset or "").lower().replace("-", "").startswith(("utf16", "utf32"))
    if wide or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # UTF-16 and UTF-32 text has NUL bytes
    return "binary data" if BINARY_BYTES.search(head) else None


def content_type_of(header: str) -> tuple[str, str | None]:
    main, _, params = header.partition(";")
    match = re.search(r"charset\s*=\s*[\"']?([^\"';\s]+)", params, re.I)
    return main.strip().lower(), match.group(1) if match else None


# Python text codecs that are no web page's charset, and whose decoders are quadratic
# (3 MB of "punycode" would hold the event loop for hours) or interpret escapes.
NOT_CHARSETS = {"punycode", "idna", "unicode-escape", "raw-unicode-escape"}


def decode_body(body: bytes, content_type: str, charset: str | None) -> str:
    """Header charset, then BOM, then <meta charset>, then UTF-8, then windows-1252."""
    candidates = [charset] if charset else []
    if body.startswith(b"\xef\xbb\xbf"):
        candidates.append("utf-8-sig")
    elif body.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates.append("utf-16")
    if "html" in content_type or "xml" in content_type:
        meta = META_CHARSET.search(body[:4096])
        if meta:
            candidates.append(meta.group(1).decode("ascii", "ignore"))
    candidates += ["utf-8", "cp1252"]
    for name in candidates:
        try:
            if codecs.lookup(name).name in NOT_CHARSETS:
                continue
            return body.decode(name)
        except (LookupError, ValueError):  # unknown, undecodable, or Python's "undefined"
            continue
    return body.decode("latin-1")


NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # not global (RFC 8215), Python says it is


def parse_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a connection really reaches: an IPv4 address carried in IPv6 as itself."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 4:
        return ip
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]  # the client behind the relay
    if ip in NAT64 or ip in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public_address(address: str) -> bool:
    ip = parse_address(address)
    return ip.is_global and not ip.is_multicast and ip not in LOCAL_NAT64


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses that `addresses(host, port)`
    resolved and checked, once per connection. httpcore still hands TLS the host name (SNI and
    the certificate check are of the name) and httpx still sends it as the Host header."""

    def __init__(self, addresses: Callable[[str, int], Awaitable[list[str]]]):
        self.addresses = addresses
        self.backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.addresses(host, port):
            try:  # an IP address: anyio connects to it without resolving anything
                return await self.backend.connect_tcp(address, port, timeout, local_address,
                                                      socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e  # every address was checked: the next one may be tried
        raise error or httpcore.ConnectError(f"no address for {host}")

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over PinnedBackend. httpx takes no network backend, so the pool it
    would build (its only state) is built here with one."""

    def __init__(self, backend: PinnedBackend, ssl_context: ssl.SSLContext):
        self._pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context,
                                                  network_backend=backend,
                                                  keepalive_expiry=5.0)


class Fetcher:
    def __init__(self, *, timeout: float = 20.0, max_bytes: int = 3_000_000,
                 max_redirects: int = 5, allow_private: bool | Iterable[str] = False,
                 user_agent: str = USER_AGENT, trust_env: bool = False,
                 verify: ssl.SSLContext | bool = True):
        """timeout: seconds for the whole fetch (connect, redirects, body), not per read.
        allow_private: True permits loopback, private and link-local addresses (SSRF opt-in);
        a list of networks ("127.0.0.1", "10.0.0.0/8") permits only those.
        verify: certificate checking, as httpx takes it (an SSLContext trusts its own CAs)."""
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.allow_private = allow_private is True
        self.allowed_networks = [] if isinstance(allow_private, bool) else \
            [ipaddress.ip_network(n, strict=False) for n in allow_private]
        self.user_agent = user_agent
        self.trust_env = trust_env
        self.verify = verify

    async def fetch(self, url: str) -> Document:
        try:
            return await asyncio.wait_for(self._fetch(url), self.timeout)
        except asyncio.TimeoutError:
            raise FetchError(f"timed out after {self.timeout:g} seconds") from None
        except httpx.HTTPError as e:
            raise FetchError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None

    async def check_url(self, url: str) -> None:
        """Scheme and host; the addresses are checked as they are connected to (addresses)."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https"):
            raise FetchError(f"only http and https URLs can be opened, not {parsed.scheme or 'a URL without a scheme'}")
        if not parsed.hostname:
            raise FetchError("the URL has no host")
        if self.trust_env:  # a proxy from the environment resolves the name itself
            await self.addresses(parsed.hostname, parsed.port or
                                 (443 if parsed.scheme == "https" else 80))

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host`, resolved once; FetchError if any of them is not allowed.
        PinnedBackend connects only to these, so the name is never resolved again."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                                 type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise FetchError(f"cannot resolve host {host}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if self.allow_private:
            return addresses
        for address in addresses:
            allowed = any(parse_address(address) in net for net in self.allowed_networks)
            if not allowed and not is_public_address(address):
                raise FetchError(f"refusing to fetch {host} ({address}): private, "
                                 "loopback and link-local addresses are blocked")
        return addresses

    async def _fetch(self, url: str) -> Document:
        headers = {"User-Agent": self.user_agent, "Accept-Encoding": ACCEPT,
                   "Accept": "text/html,text/plain;q=0.9,*/*;q=0.5"}
        timeout = httpx.Timeout(self.timeout)
        transport = PinnedTransport(PinnedBackend(self.addresses), httpx.create_ssl_context(
            verify=self.verify, trust_env=self.trust_env))
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                     trust_env=self.trust_env, headers=headers,
                                     transport=transport) as client:
            for _ in range(self.max_redirects + 1):
                await self.check_url(url)
                async with client.stream("GET", url) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = urljoin(str(response.url), location)
                        continue
                    if response.status_code >= 400:
                        raise FetchError(f"HTTP {response.status_code} "
                                         f"{response.reason_phrase or ''}".rstrip())
                    body, truncated = await self._read_capped(response)
                    ctype, charset = content_type_of(response.headers.get("content-type", ""))
                    kind = binary_kind(body, charset)
                    if kind:
                        raise FetchError(f"refusing binary content: {kind} (served as "
                                         f"{ctype or 'no content type'})")
                    return Document(url=str(response.url), status=response.status_code,
                                    content_type=ctype, truncated=truncated,
                                    text=decode_body(body, ctype, charset))
        raise FetchError(f"too many redirects (more than {self.max_redirects})")

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        """The decoded body, at most max_bytes; True when there was more. The raw body and
        every decoding layer stop at max_bytes too."""
        try:
            decoder = Decoder(response.headers.get("content-encoding", ""), self.max_bytes)
            body, wire = bytearray(), 0
            async for chunk in response.aiter_raw():
                wire += len(chunk)
                for piece in decoder.decode(chunk):
                    body += piece
                    if len(body) > self.max_bytes:
                        return bytes(body[:self.max_bytes]), True
                if decoder.over or wire > self.max_bytes:
                    return bytes(body), True
            for piece in decoder.decode(b""):  # what the last layers still hold
                body += piece
            return bytes(body[:self.max_bytes]), len(body) > self.max_bytes or decoder.over
        except DecodingError as e:
            raise FetchError(str(e)) from None
