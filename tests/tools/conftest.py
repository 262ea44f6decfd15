"""Fixtures for the tool tests: a real HTTP server on 127.0.0.1 with fixture pages, and a
folder of documents for the local search backend. Nothing here touches the internet."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LONG_PARAGRAPHS = 400

INDEX = """<!doctype html><html><head><title>Fixture index</title>
<style>body { color: red }</style><script>var secret = "do not show";</script></head>
<body><h1>Welcome to the fixture site</h1>
<p>Read the <a href="/table.html">table page</a>, the <a href="long.html">long page</a>
or the <a href="https://example.org/about">example site</a>. <a href="#top">Back to top</a>.</p>
<h2>Facts</h2>
<ul><li>The capital of Freedonia is Fredville.</li><li>Its river is the Blue Snake.</li></ul>
<p>Write to <a href="mailto:a@b.c">us</a>. A fake citation 【9†L1】 in the page.</p>
</body></html>"""

TABLE = """<html><head><title>Planets</title></head><body><h1>Planet table</h1>
<table><tr><th>Planet</th><th>Moons</th></tr>
<tr><td>Mars</td><td>2</td></tr><tr><td>Jupiter</td><td>95</td></tr></table>
<ol><li>first item</li><li>second item</li></ol></body></html>"""


def long_page() -> str:
    body = "".join(f"<p>Paragraph {i}: the quick brown fox number {i} jumps.</p>"
                   for i in range(LONG_PARAGRAPHS))
    return f"<html><head><title>Long page</title></head><body>{body}" \
           "<p>The needle is hidden here.</p></body></html>"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8",
             headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts are part of the tests)

    def do_GET(self):
        path = self.path
        self.server.hits.append(path)
        if path in ("/", "/index.html"):
            self.send(200, INDEX.encode())
        elif path == "/table.html":
            self.send(200, TABLE.encode())
        elif path == "/long.html":
            self.send(200, long_page().encode())
        elif path == "/latin1.html":  # charset in the header
            html = "<html><head><title>Café</title></head><body><p>Crème brûlée à Zürich</p></body></html>"
            self.send(200, html.encode("iso-8859-1"), "text/html; charset=ISO-8859-1")
        elif path == "/meta-charset.html":  # charset only in a <meta> tag
            html = ('<html><head><meta charset="windows-1252"><title>Quotes</title></head>'
                    "<body><p>\u201cSmart quotes\u201d \u2013 and \u20ac5</p></body></html>")
            self.send(200, html.encode("cp1252"), "text/html")
        elif path == "/plain.txt":
            self.send(200, "line one\nline two with Fredville\n".encode(), "text/plain")
        elif path == "/image.png":
            self.send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
        elif path == "/redirect":
            self.send(302, b"", headers={"Location": "/table.html"})
        elif path == "/redirect-loop":
            self.send(302, b"", headers={"Location": "/redirect-loop"})
        elif path == "/redirect-metadata":  # an SSRF attempt through a redirect
            self.send(302, b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/redirect-file":
            self.send(302, b"", headers={"Location": "file:///etc/passwd"})
        elif path == "/huge":  # 64 MB unless the client hangs up first
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            chunk = b"x" * 65536 + b"\n"
            try:
                for _ in range(1024):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/slow":  # answers only after 5 s
            time.sleep(5)
            self.send(200, b"<html><body>late</body></html>")
        elif path == "/drip":  # headers at once, then one byte per 0.2 s for 20 s
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send(404, b"<html><body>not found</body></html>")


@pytest.fixture(scope="session")
def web():
    """Base URL of a local fixture web server (http://127.0.0.1:PORT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def docs(tmp_path):
    """A folder of documents for LocalFolderBackend."""
    (tmp_path / "freedonia.md").write_text(
        "# Freedonia\n\nFreedonia is a small country. Its capital is Fredville.\n"
        "The national dish is Fredville stew.\n")
    (tmp_path / "rivers.html").write_text(
        "<html><head><title>Rivers of Freedonia</title></head><body><h1>Rivers</h1>"
        "<p>The Blue Snake river flows through Fredville.</p></body></html>")
    (tmp_path / "unrelated.txt").write_text("Nothing to see here about cooking pasta.\n")
    (tmp_path / "image.bin").write_bytes(b"\0\1\2")
    return tmp_path
