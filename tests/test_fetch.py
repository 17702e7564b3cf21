"""image_url fetches (handler/fetch.py). Images come from local HTTP(S) servers on 127.0.0.1; host names are
answered by a patched resolver, and every connection the fetcher opens is checked to be to 127.0.0.0/8: no test
sends traffic anywhere else. Loopback is allowed only where a test says so (fetch.EXEMPT_NETWORKS)."""

import datetime as dt
import io
import ipaddress
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from handler import fetch
from handler.errors import ApiError

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
NAMES = {  # the patched resolver's answers
    "images.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "internal.test": ["10.0.0.5"],
    "cgnat.test": ["100.64.0.1"],
    "mixed.test": ["93.184.215.14", "10.0.0.5"],  # one public, one private: refused as a whole
    "mapped.test": ["::ffff:169.254.169.254"],
    "ula.test": ["fd00:ec2::254"],
    "swap.test": ["127.0.0.2"],
}


class Images(BaseHTTPRequestHandler):
    photo = b""
    seen: list = []  # (path, Host header)
    stall = threading.Event()

    def log_message(self, *args):
        pass

    def send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        Images.seen.append((self.path, self.headers["Host"]))
        url = urlsplit(self.path)
        if url.path == "/photo.jpg":
            self.send(200, self.photo, {"Content-Type": "image/jpeg", "Content-Length": str(len(self.photo))})
        elif url.path.startswith("/redirect/"):
            n = int(url.path.rsplit("/", 1)[1])
            self.send(302, headers={"Location": f"/redirect/{n - 1}" if n > 1 else "/photo.jpg"})
        elif url.path == "/to":
            self.send(302, headers={"Location": parse_qs(url.query)["url"][0]})
        elif url.path == "/no-location":
            self.send(302)
        elif url.path == "/declared-big":
            self.send(200, headers={"Content-Length": str(10**9)})
        elif url.path == "/streamed-big":  # no Content-Length: HTTP/1.0, the body ends when the connection closes
            self.send(200, b"\xff" * 300_000)
        elif url.path == "/stall":
            self.stall.wait(10)
        elif url.path == "/drip-headers":  # a valid status line, then one header byte every 0.2 s, for 20 s
            self.drip(b"HTTP/1.1 200 OK\r\n", b"X")
        elif url.path == "/drip-body":  # headers at once, then one body byte every 0.2 s
            self.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", b"\xff")
        else:
            self.send(404, b"not here")

    def drip(self, head: bytes, byte: bytes) -> None:
        try:
            self.wfile.write(head)
            for _ in range(100):
                if self.stall.wait(0.2):
                    return
                self.wfile.write(byte)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass



def serve(context: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=85)
    Images.photo = buf.getvalue()
    httpd = serve()
    yield f"http://images.test:{httpd.server_address[1]}"
    Images.stall.set()
    httpd.shutdown()


@pytest.fixture(autouse=True)
def resolver_and_guard(monkeypatch):
    """Names resolve from NAMES (literal addresses parse without DNS); connections are recorded and must be to
    loopback, so a rule that failed to refuse shows up as an assertion, not as traffic."""
    real = socket.getaddrinfo
    connections = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in NAMES:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in NAMES[host]]
        return real(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)

    def connect(ip, port, timeout):
        assert ip.is_loopback, f"the fetcher tried to connect to {ip}"
        connections.append(str(ip))
        return socket.create_connection((str(ip), port), timeout=timeout)

    monkeypatch.setattr(fetch.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(fetch, "_connect", connect)
    Images.seen = []
    return connections


@pytest.fixture
def loopback_allowed(monkeypatch):
    monkeypatch.setattr(fetch, "EXEMPT_NETWORKS", LOOPBACK)


def refused(url: str, code: str, **options) -> ApiError:
    with pytest.raises(ApiError) as info:
        fetch.fetch_image(url, max_bytes=options.pop("max_bytes", 10**7), **options)
    assert info.value.code == code, info.value.message
    return info.value


# ---- the address rules ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert fetch.address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.8.8", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.0.192", "192.0.2.1",
    "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",
    "::169.254.169.254"])
def test_private_and_special_addresses_are_refused(address):
    assert not fetch.address_allowed(ipaddress.ip_address(address))


def test_loopback_is_refused_unless_a_test_exempts_it(server, resolver_and_guard):
    refused(f"{server}/photo.jpg", "url_host_not_allowed")
    refused(server.replace("images.test", "127.0.0.1") + "/photo.jpg", "url_host_not_allowed")
    assert resolver_and_guard == [] and Images.seen == []


@pytest.mark.parametrize("host", ["metadata.test", "internal.test", "cgnat.test", "mixed.test", "mapped.test",
                                  "ula.test", "169.254.169.254", "[fd00:ec2::254]", "[::ffff:a9fe:a9fe]"])
def test_hosts_resolving_to_non_public_addresses_are_refused_before_connecting(host, resolver_and_guard,
                                                                              loopback_allowed):
    error = refused(f"http://{host}/latest/meta-data/", "url_host_not_allowed")
    assert error.status_code == 422
    assert resolver_and_guard == []


def test_the_connected_address_is_checked_again(server, resolver_and_guard, monkeypatch):
    """swap.test resolves to 127.0.0.2 (exempted here); a connection that ends up elsewhere is dropped."""
    monkeypatch.setattr(fetch, "EXEMPT_NETWORKS", (ipaddress.ip_network("127.0.0.2/32"),))
    monkeypatch.setattr(fetch, "_connect", lambda ip, port, timeout: socket.create_connection(("127.0.0.1", port)))
    refused(server.replace("images.test", "swap.test") + "/photo.jpg", "url_host_not_allowed")
    assert Images.seen == []


# ---- fetching -------------------------------------------------------------------------------------------------
def test_fetches_from_the_vetted_address_with_the_host_name(server, resolver_and_guard, loopback_allowed):
    assert fetch.fetch_image(f"{server}/photo.jpg", max_bytes=10**7) == Images.photo
    assert resolver_and_guard == ["127.0.0.1"]
    assert Images.seen == [("/photo.jpg", server.removeprefix("http://"))]


def test_redirects_are_followed_up_to_the_limit(server, loopback_allowed):
    assert fetch.fetch_image(f"{server}/redirect/3", max_bytes=10**7, max_redirects=3) == Images.photo
    refused(f"{server}/redirect/4", "url_too_many_redirects", max_redirects=3)


@pytest.mark.parametrize("target,code", [
    ("http://169.254.169.254/latest/meta-data/", "url_host_not_allowed"),
    ("http://internal.test/admin", "url_host_not_allowed"),
    ("http://[::1]:1/", "url_host_not_allowed"),
    ("file:///etc/passwd", "url_scheme_not_allowed"),
    ("gopher://images.test/", "url_scheme_not_allowed")])
def test_every_redirect_is_checked_again(server, resolver_and_guard, monkeypatch, target, code):
    monkeypatch.setattr(fetch, "EXEMPT_NETWORKS", (ipaddress.ip_network("127.0.0.1/32"),))
    refused(f"{server}/to?url={target}", code)
    assert resolver_and_guard == ["127.0.0.1"]  # only the first hop connected


@pytest.mark.parametrize("path", ["/declared-big", "/streamed-big"])
def test_the_size_cap_holds_while_streaming(server, loopback_allowed, path):
    error = refused(f"{server}{path}", "url_too_large", max_bytes=100_000)
    assert error.status_code == 413 and error.details["limit_bytes"] == 100_000


def test_upstream_failures(server, loopback_allowed):
    error = refused(f"{server}/missing", "url_fetch_failed")
    assert error.status_code == 502 and error.details["upstream_status"] == 404
    refused(f"{server}/no-location", "url_fetch_failed")
    refused("http://no-such-host.invalid/x.jpg", "url_fetch_failed")
    refused("http://127.0.0.1:1/x.jpg", "url_fetch_failed")  # nothing listens on port 1


def test_a_stalled_server_times_out(server, loopback_allowed):
    assert refused(f"{server}/stall", "url_timeout", read_timeout=0.3).status_code == 504


@pytest.mark.parametrize("path", ["/drip-headers", "/drip-body"])
def test_the_total_deadline_covers_headers_and_body(server, loopback_allowed, path):
    """Every read gets a byte within the read timeout, yet the fetch as a whole stops at the total deadline (the
    server would drip for 20 s; the margin is for a loaded machine)."""
    started = time.monotonic()
    refused(f"{server}{path}", "url_timeout", read_timeout=5.0, total_timeout=1.0)
    assert time.monotonic() - started < 3.0


def test_the_total_deadline_covers_redirects_and_a_slow_resolver(server, loopback_allowed, monkeypatch):
    real = socket.getaddrinfo

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(fetch.socket, "getaddrinfo", slow)
    started = time.monotonic()
    refused(f"{server}/redirect/3", "url_timeout", total_timeout=2.0)  # 4 hops of 1.5 s each: 6 s without it
    assert time.monotonic() - started < 4.0


@pytest.mark.parametrize("url,code", [
    ("ftp://images.test/x.jpg", "url_scheme_not_allowed"), ("images.test/x.jpg", "url_scheme_not_allowed"),
    ("http:///x.jpg", "url_invalid"), ("http://user:secret@images.test/x.jpg", "url_invalid"),
    ("http://images.test/a b.jpg", "url_invalid"), ("http://images.test:99999/", "url_invalid")])
def test_malformed_urls_are_refused(url, code, resolver_and_guard):
    refused(url, code)
    assert resolver_and_guard == []


# ---- https: SNI and certificate checked against the host name, not the pinned address ------------------------------
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, server):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    names = []
    context.sni_callback = lambda sock, server_name, ctx: names.append(server_name)
    httpd = serve(context)
    yield httpd.server_address[1], folder / "cert.pem", names
    httpd.shutdown()


def test_https_sends_sni_and_verifies_the_certificate_for_the_host_name(tls_server, loopback_allowed, monkeypatch):
    port, cert, names = tls_server
    monkeypatch.setattr(fetch, "ssl_context", lambda: ssl.create_default_context(cafile=str(cert)))
    assert fetch.fetch_image(f"https://images.test:{port}/photo.jpg", max_bytes=10**7) == Images.photo
    assert names[-1] == "images.test"
    assert Images.seen[-1] == ("/photo.jpg", f"images.test:{port}")
    error = refused(f"https://other.test:{port}/photo.jpg", "url_fetch_failed")  # same address, wrong name
    assert "certificate" in error.message


# ---- through the API ------------------------------------------------------------------------------------------
def test_analyze_and_edit_a_photo_given_by_url(client, server, loopback_allowed):
    r = client.post("/v1/analyze", json={"image_url": f"{server}/redirect/1"})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 1
    # as a no-code tool sends it: JSON without a Content-Type header
    r = client.post("/v1/edit", content=json.dumps({"image_url": f"{server}/photo.jpg", "edits": {"glasses": 1.0},
                                                    "response": "json"}).encode())
    assert r.status_code == 200, r.text
    face = r.json()["faces"][0]
    assert face["attributes_after"]["Eyeglasses"] > face["attributes_before"]["Eyeglasses"]
    assert r.json()["content_type"] == "image/jpeg" and r.json()["image_base64"]


def test_api_refusals_are_json_with_a_code(client, server, resolver_and_guard):
    r = client.post("/v1/analyze", json={"image_url": "http://metadata.test/latest/meta-data/"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "url_host_not_allowed"
    r = client.post("/v1/analyze", json={"image_url": f"{server}/photo.jpg", "image_base64": "AAAA"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = client.post("/v1/interpolate", json={"image_url": "ftp://x/y.jpg", "image2_url": "http://internal.test/"})
    assert r.status_code == 422 and r.json()["error"]["code"].startswith("url_")
    assert resolver_and_guard == []
