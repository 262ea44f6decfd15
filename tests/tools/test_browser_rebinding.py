"""DNS rebinding against the browser, with a real DNS server on 127.0.0.1.

The attacker's resolver answers an allowed address for the check and 127.0.0.1 for every lookup
after it. Nothing leaves the machine: the allowed address is 127.0.0.2 (the fetcher allows only
that network), where a "public" server listens on the same port as a "secret" one on 127.0.0.1.
The system resolver (socket.getaddrinfo, which asyncio and anyio both call) asks the DNS server
for names under .test; every other name is resolved as usual."""
from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.tools.browser import BrowserTool, Fetcher, LocalFolderBackend

PUBLIC, SECRET = "127.0.0.2", "127.0.0.1"


class DnsServer:
    """A UDP DNS server answering A queries: `answers[name]` is the list of addresses to give,
    one per query, the last one repeated."""

    def __init__(self):
        self.answers: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # to notice close()
        self.address = self.sock.getsockname()
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.closed = True
        self.thread.join()
        self.sock.close()

    def _serve(self):
        while not self.closed:
            try:
                query, client = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1:i + 1 + query[i]].decode())
                i += 1 + query[i]
            question = query[12:i + 5]  # the name, its type and its class
            name, qtype = ".".join(labels).lower(), struct.unpack(">H", query[i + 1:i + 3])[0]
            self.queries.append(name)
            answers = self.answers.get(name, [])
            address = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else None
            record = b"" if address is None or qtype != 1 else (  # A records only
                struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(address))
            header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if record else 0, 0, 0)
            self.sock.sendto(header + question + record, client)

    def resolve(self, name: str) -> str | None:
        """Asks the server for the A record of `name`, as a stub resolver would."""
        query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(
            bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0\0\1\0\1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(query, self.address)
            reply = sock.recv(512)
        count = struct.unpack(">H", reply[6:8])[0]
        return socket.inet_ntoa(reply[-4:]) if count else None


@pytest.fixture
def dns(monkeypatch):
    server = DnsServer()
    system = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if not (name or "").endswith(".test"):
            return system(host, port, family, type, proto, flags)
        address = server.resolve(name)
        if address is None or family == socket.AF_INET6:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, type or socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(certificate chain file, key file, client context): a test CA, and a certificate
    signed by it for rebind.test and hop.test."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject, key, issuer_key, ca):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("rebind.test"), x509.DNSName("hop.test")]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rebinding test CA")])
    ca = certificate(ca_name, ca_key, ca_key, True)
    leaf = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rebind.test")]),
                       key, ca_key, False)
    folder = tmp_path_factory.mktemp("tls")
    chain, key_file = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return chain, key_file, client


def serve(address, port, body, tls=None):
    """An HTTP(S) server recording (path, Host header) of each request and, over TLS, the
    server name (SNI) of each handshake."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.server.hits.append((self.path, self.headers["Host"]))
            if self.path == "/hop":  # a redirect to a name that rebinds
                self.send_response(302)
                self.send_header("Location", f"http://hop.test:{port}/landing")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a client refusing the certificate is expected here

    server = Server((address, port), Handler)
    server.hits, server.names = [], []
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[0], tls[1])
        context.sni_callback = lambda sock, name, ctx: server.names.append(name)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


class Servers:
    """The same port on 127.0.0.2 (public) and 127.0.0.1 (secret)."""

    def __init__(self, scheme, tls):
        self.scheme = scheme
        self.verify = tls[2] if tls else True
        for _ in range(20):
            self.secret = serve(SECRET, 0, b"SECRET page on the loopback address", tls)
            self.port = self.secret.server_address[1]
            try:
                self.public = serve(PUBLIC, self.port, b"public page", tls)
                return
            except OSError:  # the port is taken on 127.0.0.2: try another
                self.close(self.secret)
        raise RuntimeError("no port free on both addresses")

    @staticmethod
    def close(*servers):
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(params=["http", "https"])
def servers(request):
    tls = request.getfixturevalue("tls") if request.param == "https" else None
    both = Servers(request.param, tls)
    yield both
    both.close(both.public, both.secret)


def browser_for(tmp_path, servers):
    fetcher = Fetcher(allow_private=[PUBLIC], timeout=10, verify=servers.verify)
    return BrowserTool(LocalFolderBackend(tmp_path), fetcher=fetcher)


def open_url(browser, url):
    return asyncio.run(browser.call("browser.open", json.dumps({"id": url})))


def test_a_rebinding_name_is_fetched_from_the_checked_address(tmp_path, dns, servers):
    """The name answers 127.0.0.2 (allowed) once, then 127.0.0.1 (not): the request goes to
    127.0.0.2, with the name as Host header and, over TLS, as server name (SNI)."""
    dns.answers["rebind.test"] = [PUBLIC, SECRET]
    result = open_url(browser_for(tmp_path, servers),
                      f"{servers.scheme}://rebind.test:{servers.port}/")
    assert servers.secret.hits == []  # the loopback page is never requested
    assert not result.error and "public page" in result.text, result.text
    assert servers.public.hits == [("/", f"rebind.test:{servers.port}")]
    assert servers.public.names == (["rebind.test"] if servers.scheme == "https" else [])
    assert dns.queries.count("rebind.test") == 1  # what was checked is what was connected to


@pytest.mark.parametrize("servers", ["http"], indirect=True)
def test_a_redirect_to_a_rebinding_name_is_pinned_too(tmp_path, dns, servers):
    dns.answers["rebind.test"] = [PUBLIC]
    dns.answers["hop.test"] = [PUBLIC, SECRET]
    result = open_url(browser_for(tmp_path, servers), f"http://rebind.test:{servers.port}/hop")
    assert servers.secret.hits == []
    assert not result.error and "public page" in result.text, result.text
    assert servers.public.hits == [("/hop", f"rebind.test:{servers.port}"),
                                   ("/landing", f"hop.test:{servers.port}")]
    assert dns.queries.count("hop.test") == 1


def test_a_name_answering_loopback_first_is_still_refused(tmp_path, dns, servers):
    dns.answers["rebind.test"] = [SECRET, PUBLIC]
    result = open_url(browser_for(tmp_path, servers),
                      f"{servers.scheme}://rebind.test:{servers.port}/")
    assert result.error and f"refusing to fetch rebind.test ({SECRET})" in result.text
    assert servers.secret.hits == [] and servers.public.hits == []


@pytest.mark.parametrize("servers", ["https"], indirect=True)
def test_the_certificate_is_checked_against_the_name(tmp_path, dns, servers):
    """Connecting to the checked address does not mean checking the certificate against the
    address: a name the certificate does not cover is refused."""
    dns.answers["other.test"] = [PUBLIC]
    result = open_url(browser_for(tmp_path, servers), f"https://other.test:{servers.port}/")
    assert result.error and "certificate" in result.text.lower(), result.text
    assert servers.public.hits == [] and servers.secret.hits == []
    assert servers.public.names == ["other.test"]
