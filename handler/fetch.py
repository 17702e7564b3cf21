"""Fetches the photo named by an `image_url` field, safely, for callers (no-code tools) that have a URL and no bytes.

- http and https only, no credentials in the URL;
- every address the host resolves to must be public (no loopback, private, link-local, carrier-grade NAT,
  metadata, multicast or reserved ranges, IPv4 inside IPv6 unwrapped first), checked again after each redirect;
- the connection goes to the vetted address itself (the host's name is sent as Host header and TLS SNI, and the
  certificate is verified against it), so a second DNS answer cannot swap in another address, and the address
  actually connected to is checked once more;
- at most `max_redirects` redirects, a byte cap enforced while streaming, connect/read/total timeouts. The total
  is a real deadline: DNS, connect, TLS handshake, every read of the status line, headers and body, and every
  redirect share it, so a host that drips a byte at a time cannot hold a fetch past it.

Refusals are 4xx ApiErrors (handler/errors.py); a remote host that fails or stalls gives 502/504.
"""

import http.client
import io
import ipaddress
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

from handler.errors import (UrlFetchFailed, UrlHostNotAllowed, UrlInvalid, UrlSchemeNotAllowed, UrlTimeout,
                            UrlTooLarge, UrlTooManyRedirects)

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHUNK_BYTES = 64 * 1024
MAX_URL_LENGTH = 2048
USER_AGENT = "face-interpolator/1.0 (image_url fetch)"

# Refused whatever ipaddress's is_global says (it already excludes most of them; this list makes the rules explicit).
BLOCKED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "fd00::/8", "fe80::/10", "fec0::/10", "ff00::/8", "64:ff9b:1::/48"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Test-only: networks exempt from the address rules. The tests put 127.0.0.0/8 here with monkeypatch to fetch
# from a local server; nothing in production (no setting, no environment variable) fills it.
EXEMPT_NETWORKS: tuple = ()

# getaddrinfo has no timeout of its own: it runs here, and the fetch stops waiting at its deadline.
_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or int(ip) >> 32 == 0:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if any(ip.version == net.version and ip in net for net in EXEMPT_NETWORKS):
        return True
    if ip.version == 6 and (inner := _embedded_ipv4(ip)) is not None:
        return address_allowed(inner)
    if any(ip.version == net.version and ip in net for net in BLOCKED_NETWORKS):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def resolve(host: str, port: int, timeout: float | None = None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout)
    except FutureTimeout:
        raise UrlTimeout(f"resolving {host!r} took too long", host=host) from None
    except (socket.gaierror, UnicodeError, OSError):
        raise UrlFetchFailed(f"could not resolve the host {host!r}", host=host) from None
    addresses = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])  # drop an IPv6 zone id
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UrlFetchFailed(f"the host {host!r} has no address", host=host)
    return addresses


def _connect(ip, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((str(ip), port), timeout=timeout)


def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _time_left(deadline: float, limit: float) -> float:
    """Seconds the next step may wait: `limit`, cut to what is left before the deadline; TimeoutError past it."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the fetch deadline has passed")
    return min(limit, remaining)


class _DeadlineSocket:
    """The connected (TLS) socket as http.client sees it: every send and receive may wait at most the read timeout
    and never past the fetch's deadline, so the status line and headers are bounded like the body."""

    def __init__(self, sock: socket.socket, *, deadline: float, read_timeout: float):
        self.sock, self.deadline, self.read_timeout = sock, deadline, read_timeout
        self._files, self._closed = 0, False  # as socket.socket: close() waits for the response's file

    def sendall(self, data) -> None:
        self.sock.settimeout(_time_left(self.deadline, self.read_timeout))
        self.sock.sendall(data)

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        self.sock.settimeout(_time_left(self.deadline, self.read_timeout))
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        self._files += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"))

    def _decref_socketios(self) -> None:  # SocketIO.close()
        self._files -= 1
        if self._closed and self._files <= 0:
            self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:  # http.client closes the connection while the response may still read from it
        self._closed = True
        if self._files <= 0:
            self.sock.close()


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to the vetted address; http.client still sends the URL's host in the Host header."""

    def __init__(self, host: str, port: int, ip, *, connect_timeout: float, read_timeout: float, tls: bool,
                 deadline: float):
        super().__init__(host, port, timeout=connect_timeout)
        self.ip, self.read_timeout, self.tls, self.deadline = ip, read_timeout, tls, deadline

    def connect(self) -> None:
        sock = _connect(self.ip, self.port, _time_left(self.deadline, self.timeout))
        try:
            peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
            if peer != self.ip or not address_allowed(peer):
                raise UrlHostNotAllowed(f"connected to {peer}, not the vetted address {self.ip}", host=self.host)
            if self.tls:  # SNI and certificate check against the URL's host name, not the address
                # The handshake as a whole is bounded by the socket's timeout (CPython keeps one deadline for it).
                sock.settimeout(_time_left(self.deadline, self.read_timeout))
                sock = ssl_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock, deadline=self.deadline, read_timeout=self.read_timeout)


def _parse(url: str) -> tuple[str, str, int, str]:
    """-> (scheme, host, port, request target), or a refusal."""
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise UrlInvalid(f"not a usable URL (at most {MAX_URL_LENGTH} characters, no spaces)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlInvalid("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlSchemeNotAllowed(f"URL scheme {scheme or '(none)'!r} is not allowed; use http or https",
                                  allowed=sorted(DEFAULT_PORTS))
    if not parts.hostname:
        raise UrlInvalid("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlInvalid("credentials in the URL are not accepted")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme], target


def _get(url: str, *, max_bytes: int, connect_timeout: float, read_timeout: float,
         deadline: float) -> tuple[bytes | None, str | None]:
    """One hop: -> (body, None), or (None, Location) for a redirect."""
    scheme, host, port, target = _parse(url)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UrlTimeout("fetching the image URL took too long")
    addresses = resolve(host, port, timeout=remaining)
    refused = [ip for ip in addresses if not address_allowed(ip)]
    if refused:
        raise UrlHostNotAllowed(f"{host} resolves to {refused[0]}, which is not a public address", host=host)
    conn = _PinnedConnection(host, port, addresses[0], connect_timeout=connect_timeout, read_timeout=read_timeout,
                             tls=scheme == "https", deadline=deadline)
    try:
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*",
                                             "Accept-Encoding": "identity"})
        response = conn.getresponse()
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                raise UrlFetchFailed(f"{host} answered {response.status} without a Location",
                                     upstream_status=response.status)
            return None, location
        if response.status != 200:
            raise UrlFetchFailed(f"{host} answered {response.status} {response.reason}".strip(),
                                 upstream_status=response.status)
        length = response.getheader("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise UrlTooLarge(f"the image at the URL is {length} bytes; the limit is {max_bytes}",
                              limit_bytes=max_bytes)
        chunks, total = [], 0
        while chunk := response.read1(CHUNK_BYTES):
            total += len(chunk)
            if total > max_bytes:
                raise UrlTooLarge(f"the image at the URL is over the limit of {max_bytes} bytes", limit_bytes=max_bytes)
            chunks.append(chunk)
        return b"".join(chunks), None
    except TimeoutError:  # a read or connect timeout, or the deadline (socket.timeout is TimeoutError)
        raise UrlTimeout(f"{host} did not answer in time") from None
    except ssl.SSLCertVerificationError as exc:
        raise UrlFetchFailed(f"the TLS certificate of {host} is not valid: {exc.verify_message}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise UrlFetchFailed(f"could not fetch from {host}: {exc.__class__.__name__}", host=host) from None
    finally:
        conn.close()


def fetch_image(url: str, *, max_bytes: int, connect_timeout: float = 3.0, read_timeout: float = 5.0,
                total_timeout: float = 10.0, max_redirects: int = 3) -> bytes:
    """The bytes at `url` (at most max_bytes), following at most max_redirects redirects, each hop vetted."""
    deadline = time.monotonic() + total_timeout
    for _ in range(max_redirects + 1):
        data, location = _get(url, max_bytes=max_bytes, connect_timeout=connect_timeout, read_timeout=read_timeout,
                              deadline=deadline)
        if data is not None:
            return data
        url = urljoin(url, location)
    raise UrlTooManyRedirects(f"more than {max_redirects} redirects", limit=max_redirects)
