"""Hostile pages, each a real attempt against a real HTTP server on 127.0.0.1, bounded in time
and memory: HTML that was quadratic to convert (nested lists, unterminated tags, long or
repeated <base>), decompression bombs, binary bodies, charsets with quadratic decoders, IPv4
addresses hidden in IPv6 forms, symbolic links out of a local search folder, and pages that
were quadratic to wrap into lines or held the event loop while laid out."""
from __future__ import annotations

import asyncio
import gzip
import json
import struct
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.tools.browser import BrowserTool, Fetcher, LocalFolderBackend
from agent.tools.browser.page import wrap_lines
from agent.tools.browser.tool import _chars_for_tokens

GiB = 1 << 30


def packed(byte: bytes, size: int, gzip_format: bool = True) -> bytes:
    """A valid gzip (else zlib, HTTP's "deflate") stream of `size` copies of `byte`, a multiple
    of 16 MiB, built in well under a second: after a full flush, zlib's output for 16 MiB of
    one byte repeats exactly, so it is packed twice and repeated."""
    chunk = byte * (16 << 20)
    count = size // len(chunk)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if gzip_format else 15)
    first = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    check = 0 if gzip_format else 1
    for _ in range(count):
        check = (zlib.crc32 if gzip_format else zlib.adler32)(chunk, check)
    trailer = struct.pack("<II", check, size & 0xFFFFFFFF) if gzip_format else \
        struct.pack(">I", check)
    final_block = b"\x03\x00"  # an empty last block (fixed Huffman codes)
    return first + repeat * (count - 1) + final_block + trailer


def test_the_bombs_are_what_they_claim():
    """The builder against zlib itself, on a size that is quick to inflate."""
    for gzip_format in (True, False):
        stream = packed(b"\0", 32 << 20, gzip_format)  # the first chunk and one repeat
        inflated = zlib.decompress(stream, 16 + zlib.MAX_WBITS if gzip_format else 15)
        assert inflated == bytes(32 << 20)


NESTED_LISTS = "<html><body>" + "<ul><li>item" * 20_000 + "</body></html>"  # 240 KB
UNTERMINATED_TAGS = "<html><body><p>hi</p>" + "<a" * 500_000  # 1 MB; html.parser: hours
MANY_LINKS_ONE_BASE = ("<html><head><base href='http://" + "a" * 200_000 + ".test/'></head>"
                       "<body>" + "<a href='x'>a</a>" * 20_000 + "</body></html>")
MANY_BASES = "<html><head>" + "<base href='a/'>" * 100_000 + "</head><body><a href='x'>link</a>"
PAGE_OF_TABS = "\t" * 1_000_000  # textwrap: 8 MB of spaces re-sliced per line, 11 to 46 s
# Paragraphs up to the size cap: about 2 s to parse, which must not be on the event loop.
LARGE_HTML = "<html><body>" + "<p>a\tb</p>" * 299_000
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200)
ZIP = b"PK\x03\x04" + bytes(200)


@pytest.fixture(scope="module")
def pages():
    """path -> (headers, body); the bombs are built once."""
    bomb = packed(b"\0", GiB)
    return {
        "/nested": ({"Content-Type": "text/html"}, NESTED_LISTS.encode()),
        "/unterminated": ({"Content-Type": "text/html"}, UNTERMINATED_TAGS.encode()),
        "/many-bases": ({"Content-Type": "text/html"}, MANY_BASES.encode()),
        "/one-base": ({"Content-Type": "text/html"}, MANY_LINKS_ONE_BASE.encode()),
        "/gzip-gzip": ({"Content-Type": "text/html", "Content-Encoding": "gzip, gzip"},
                       gzip.compress(bomb, 9)),
        "/gzip": ({"Content-Type": "text/plain", "Content-Encoding": "gzip"}, bomb),
        "/deflate": ({"Content-Type": "text/plain", "Content-Encoding": "deflate"},
                     packed(b"\0", GiB, gzip_format=False)),
        "/text-bomb": ({"Content-Type": "text/plain", "Content-Encoding": "gzip, gzip"},
                       gzip.compress(packed(b"a", GiB), 9)),
        "/raw-deflate": ({"Content-Type": "text/plain", "Content-Encoding": "deflate"},
                         zlib.compress(b"raw deflate works", wbits=-15)),
        "/small-gzip-gzip": ({"Content-Type": "text/plain", "Content-Encoding": "gzip, gzip"},
                             gzip.compress(gzip.compress(b"two layers of gzip"))),
        "/brotli": ({"Content-Type": "text/plain", "Content-Encoding": "br"}, b"\x0b\x02\x80hi\x03"),
        "/corrupt-gzip": ({"Content-Type": "text/plain", "Content-Encoding": "gzip"},
                          b"\x1f\x8b\x08\x00" + bytes(20)),
        "/too-many-layers": ({"Content-Type": "text/plain",
                              "Content-Encoding": ", ".join(["gzip"] * 50)}, b"x"),
        "/nul-untyped": ({}, b"looks like text\0\0\0\x01\x02 then junk" * 50),
        "/png-as-html": ({"Content-Type": "text/html"}, PNG),
        "/zip-as-text": ({"Content-Type": "text/plain; charset=utf-8"}, ZIP),
        "/punycode": ({"Content-Type": "text/plain; charset=punycode"},
                      b"a" * 500_000 + b"-" + b"b" * 500_000),
        "/meta-punycode": ({"Content-Type": "text/html"},
                           b"<meta charset=punycode><p>" + b"a" * 500_000 + b"-" + b"b" * 500_000),
        "/utf16": ({"Content-Type": "text/plain; charset=utf-16"},
                   "UTF-16 text is text".encode("utf-16")),
        "/tabs": ({"Content-Type": "text/plain"}, PAGE_OF_TABS.encode()),
        "/pre-tabs": ({"Content-Type": "text/html"}, f"<pre>x{PAGE_OF_TABS}x</pre>".encode()),
        "/large": ({"Content-Type": "text/html"}, LARGE_HTML.encode()),
    }


@pytest.fixture(scope="module")
def hostile(pages):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.server.hits.append(self.path)
            headers, body = pages.get(self.path, ({}, b"not found"))
            self.send_response(200 if self.path in pages else 404)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser stopped reading: the point of the size cap

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a client that hung up mid-body is expected here

    server = Server(("127.0.0.1", 0), Handler)
    server.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def open_url(browser, url):
    return asyncio.run(browser.call("browser.open", json.dumps({"id": url})))


def measured(function, *args):
    """(result, seconds, peak traced bytes) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = function(*args)
        return result, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def browser(tmp_path):
    return BrowserTool(LocalFolderBackend(tmp_path), allow_private=["127.0.0.1"])


def test_deeply_nested_lists_stay_linear(browser, hostile):
    """20,000 nested items: indentation stops growing (it was 2 spaces per level, 400 million
    characters in all), so text and memory stay a small multiple of the page."""
    result, seconds, peak = measured(open_url, browser, f"{hostile.base}/nested")
    assert not result.error
    page = browser.pages[-1]
    assert "  * item" in page.text
    assert len(page.text) < 20 * len(NESTED_LISTS)
    assert max(len(line) - len(line.lstrip()) for line in page.text.split("\n")) <= 16
    assert seconds < 30 and peak < 100 << 20, (seconds, peak)


def test_unterminated_tags_parse_in_linear_time(browser, hostile):
    result, seconds, peak = measured(open_url, browser, f"{hostile.base}/unterminated")
    assert not result.error and "hi" in browser.pages[-1].text
    assert seconds < 30 and peak < 100 << 20, (seconds, peak)


def test_a_long_base_url_is_not_repeated_in_every_link(browser, hostile):
    result, seconds, peak = measured(open_url, browser, f"{hostile.base}/one-base")
    assert not result.error
    page = browser.pages[-1]
    assert len(page.text) < 5 * len(MANY_LINKS_ONE_BASE)  # was 20,000 copies of 200 KB
    assert sum(map(len, page.urls.values())) < 50 << 20
    assert seconds < 30 and peak < 200 << 20, (seconds, peak)


def test_only_the_first_base_counts(browser, hostile):
    """100,000 `<base href='a/'>`: each used to lengthen the next (quadratic joining)."""
    result, seconds, _ = measured(open_url, browser, f"{hostile.base}/many-bases")
    assert not result.error
    assert browser.pages[-1].urls == {"0": f"{hostile.base}/a/x"}
    assert seconds < 30, seconds


@pytest.mark.parametrize("path", ["/gzip-gzip", "/gzip", "/deflate"])
def test_decompression_bombs_stop_at_the_size_cap(browser, hostile, pages, path):
    """1 GiB of zeros behind one or two layers stops at the 3 MB cap, never inflated whole."""
    assert len(pages[path][1]) < 2 << 20  # what goes over the wire
    result, seconds, peak = measured(open_url, browser, f"{hostile.base}{path}")
    # Zeros are binary data: refused once the capped body is sniffed; inflating it whole would
    # take seconds and gigabytes, which these bounds rule out.
    assert result.error and "binary data" in result.text, result.text
    assert seconds < 20 and peak < 64 << 20, (seconds, peak)


def test_decoded_layers_and_raw_deflate(browser, hostile):
    assert "two layers of gzip" in open_url(browser, f"{hostile.base}/small-gzip-gzip").text
    assert "raw deflate works" in open_url(browser, f"{hostile.base}/raw-deflate").text


def test_bomb_of_text_is_cut_at_the_cap(tmp_path, hostile, pages):
    """1 GiB of text behind two gzip layers: the page keeps the cap's worth, with a note."""
    assert len(pages["/text-bomb"][1]) < 64 << 10
    browser = BrowserTool(LocalFolderBackend(tmp_path), fetcher=Fetcher(
        allow_private=True, max_bytes=200_000))
    result, seconds, peak = measured(open_url, browser, f"{hostile.base}/text-bomb")
    assert not result.error
    text = browser.pages[-1].text
    assert 200_000 <= len(text) < 201_000 and "cut short" in text
    assert seconds < 20 and peak < 64 << 20, (seconds, peak)


def test_unsupported_and_corrupt_encodings_are_one_line_errors(browser, hostile):
    brotli = open_url(browser, f"{hostile.base}/brotli")
    assert brotli.error and "unsupported content encoding 'br'" in brotli.text
    corrupt = open_url(browser, f"{hostile.base}/corrupt-gzip")
    assert corrupt.error and "gzip content encoding is corrupt" in corrupt.text
    layers = open_url(browser, f"{hostile.base}/too-many-layers")
    assert layers.error and "too many content encodings (50 layers" in layers.text
    for result in (brotli, corrupt, layers):
        assert "\n" not in result.text


@pytest.mark.parametrize("path, kind, served", [
    ("/nul-untyped", "binary data", "no content type"),
    ("/png-as-html", "PNG image", "text/html"),
    ("/zip-as-text", "ZIP archive", "text/plain"),
])
def test_binary_bodies_are_refused_naming_their_type(browser, hostile, path, kind, served):
    result = open_url(browser, f"{hostile.base}{path}")
    assert result.error and "\n" not in result.text
    assert f"refusing binary content: {kind} (served as {served})" in result.text
    assert not browser.pages  # nothing of it reaches the model


@pytest.mark.parametrize("path", ["/punycode", "/meta-punycode"])
def test_quadratic_charsets_are_not_used(browser, hostile, path):
    """Python's punycode decoder is quadratic (80 KB: 2 s; 1 MB: hours); no page is punycode."""
    result, seconds, _ = measured(open_url, browser, f"{hostile.base}{path}")
    assert not result.error and "aaaa" in result.text
    assert seconds < 30, seconds


def test_utf16_text_is_not_mistaken_for_binary(browser, hostile):
    assert "UTF-16 text is text" in open_url(browser, f"{hostile.base}/utf16").text


WRAPPED = {
    "tabs": PAGE_OF_TABS,
    "long word": "x" * 3_000_000,  # a page's worth (the size cap); textwrap: 1.8 s, 1 MB 0.3 s
    "mixed": ("\t" * 100_000 + "x" * 100_000 + " some ordinary words " * 5) * 5,
}


@pytest.mark.parametrize("name", WRAPPED)
def test_wrapping_is_linear(name):
    text = WRAPPED[name]
    start = time.perf_counter()  # not `measured`: tracemalloc slows allocation tenfold
    lines = wrap_lines(text)
    seconds = time.perf_counter() - start
    assert all(len(line) <= 80 for line in lines)
    assert "".join(lines) == text  # tabs kept as they are, nothing lost or added
    assert seconds < 0.5, seconds


@pytest.fixture
def warm(browser):
    """The browser with the o200k vocabulary loaded, as in the server: the first display of a
    long page loads it (up to 2 s, once), which is not what these tests time."""
    _chars_for_tokens("warm " * 2000, 10)
    return browser


@pytest.mark.parametrize("path", ["/tabs", "/pre-tabs"])
def test_a_page_of_tabs_opens_fast(warm, hostile, path):
    browser = warm
    start = time.perf_counter()
    result = open_url(browser, f"{hostile.base}{path}")
    seconds = time.perf_counter() - start
    assert not result.error
    assert len(browser.pages[-1].lines) < 13_000  # 1 MB / 80, not 8 MB of spaces / 80
    assert seconds < 2, seconds


@pytest.mark.parametrize("source", ["web", "local folder"])
def test_the_event_loop_runs_while_a_large_page_is_laid_out(warm, hostile, tmp_path, source):
    """Inside the server, other requests (/health) wait for the event loop: a page taking
    seconds to parse and wrap is laid out in a thread, and the loop keeps ticking."""
    url = f"{hostile.base}/large"
    if source == "local folder":  # the browser's search folder is tmp_path
        (tmp_path / "large.html").write_text(LARGE_HTML)
        url = (tmp_path / "large.html").as_uri()

    async def main():
        gaps, done = [], asyncio.Event()

        async def tick():
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)  # the ticker runs: blocking from the first step is seen
        start = time.perf_counter()
        result = await warm.call("browser.open", json.dumps({"id": url}))
        seconds = time.perf_counter() - start
        done.set()
        await ticker
        return result, seconds, max(gaps)

    result, seconds, longest_gap = asyncio.run(main())
    assert not result.error and "a b" in result.text
    assert longest_gap < 0.5, (longest_gap, seconds)


def test_laying_out_a_page_has_a_deadline(tmp_path, hostile):
    browser = BrowserTool(LocalFolderBackend(tmp_path), allow_private=True, layout_timeout=0.05)
    result = open_url(browser, f"{hostile.base}/large")
    assert result.error and "laying out the page took more than 0.05 seconds" in result.text
    assert not browser.pages


@pytest.mark.parametrize("host", [
    "[::ffff:127.0.0.1]",        # IPv4-mapped
    "[::ffff:7f00:1]",           # the same, written in hex
    "[::127.0.0.1]",             # IPv4-compatible
    "[64:ff9b::7f00:1]",         # NAT64 well-known prefix
    "[64:ff9b:1::7f00:1]",       # NAT64 local-use prefix
    "[2002:7f00:1::1]",          # 6to4 of 127.0.0.1
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    "[64:ff9b::a9fe:a9fe]",      # NAT64 of the metadata address 169.254.169.254
])
def test_ipv4_addresses_in_ipv6_forms_are_refused(tmp_path, hostile, host):
    browser = BrowserTool(LocalFolderBackend(tmp_path))  # the default: no private addresses
    hits = len(hostile.hits)
    port = hostile.server_address[1]
    result = open_url(browser, f"http://{host}:{port}/nested")
    assert result.error and "refusing to fetch" in result.text, result.text
    assert len(hostile.hits) == hits


def test_public_addresses_in_ipv6_forms_still_pass():
    from agent.tools.browser.fetch import is_public_address
    for address in ("::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "8.8.8.8",
                    "2606:4700:4700::1111"):
        assert is_public_address(address), address


def test_local_folder_never_leaves_its_root(tmp_path):
    root, outside = tmp_path / "docs", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "shadow.txt").write_text("root:SECRETHASH:19000:0:99999:7:::\n")
    (outside / "more").mkdir()
    (outside / "more" / "notes.md").write_text("SECRETHASH in a linked folder\n")
    (root / "ok.md").write_text("# Fine\nThe allowed document mentions SECRETHASH too.\n")
    (root / "link.txt").symlink_to(outside / "shadow.txt")
    (root / "linked-folder").symlink_to(outside / "more", target_is_directory=True)
    (root / "inner.md").symlink_to(root / "ok.md")  # a link that stays inside is fine
    (root / "loop.md").symlink_to(root / "loop.md")
    browser = BrowserTool(LocalFolderBackend(root))
    found = asyncio.run(browser.call("browser.search", json.dumps({"query": "SECRETHASH"})))
    assert "The allowed document" in found.text
    assert "root:SECRETHASH" not in found.text and "linked folder" not in found.text
    for url in ((root / "link.txt").as_uri(), (root / "linked-folder" / "notes.md").as_uri(),
                f"file://{root}/../outside/shadow.txt", (outside / "shadow.txt").as_uri()):
        result = open_url(browser, url)
        assert result.error and "not a document of the search folder" in result.text, url
    assert "allowed document" in open_url(browser, (root / "inner.md").as_uri()).text


def test_local_documents_are_read_up_to_the_cap(tmp_path):
    (tmp_path / "big.txt").write_text("needle\n" + "x" * 5_000_000)
    backend = LocalFolderBackend(tmp_path, max_bytes=100_000)
    page = asyncio.run(backend.fetch((tmp_path / "big.txt").as_uri()))
    assert 100_000 <= len(page.text) < 101_000


def test_a_search_result_with_a_lone_surrogate(tmp_path):
    """A JSON "\\ud800" escape in a result title gives Python a string nothing can encode."""
    from agent.tools.browser.backends import SearchBackend, SearchResult

    class Results(SearchBackend):
        async def search(self, query, topn):
            title = json.loads('"bad \\ud800 title"')
            return [SearchResult(title=title, url="https://example.org/", snippet=title)]

    result = asyncio.run(BrowserTool(Results()).call("browser.search", '{"query": "x"}'))
    assert not result.error and "bad ? title" in result.text
