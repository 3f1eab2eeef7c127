"""Fetching photos by URL: real downloads from a local server, and every way to aim it where it must not go.

A threaded HTTP server on 127.0.0.1 plays the web (reached with the test-only `allow_loopback=True`).
Refusals are checked with `socket.socket.connect` patched, so "refused" also proves "never connected".
"""

from __future__ import annotations

import functools
import io
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.intake.urlfetch import (
    USER_AGENT,
    FetchedImage,
    FetchError,
    FetchLimits,
    check_url,
    fetch_image,
)
from conftest import examples

REAL_CONNECT = socket.socket.connect
REAL_GETADDRINFO = socket.getaddrinfo
PUBLIC_IP = "93.184.216.34"


def encode(fmt: str) -> bytes:
    image = Image.new("RGB", (40, 30), (30, 120, 40))
    image.paste((200, 180, 20), (10, 5, 30, 25))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


PNG = encode("PNG")
JPEG = encode("JPEG")


# --- the local web --------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server: LocalWeb

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        path = urlsplit(self.path).path
        route = getattr(
            self, "route_" + path.strip("/").split("/")[0].replace("-", "_").replace(".", "_"), None
        )
        if route is None:
            self.send_error(404)
        else:
            route()

    def reply(self, body: bytes, content_type: str | None, length: int | None = None) -> None:
        self.send_response(200)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str | None) -> None:
        self.send_response(302)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def start_stream(self, content_type: str) -> None:  # no Content-Length: the body ends when we close
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()

    def route_img_png(self) -> None:
        self.reply(PNG, "image/png")

    def route_img_jpg(self) -> None:
        self.reply(JPEG, "image/jpeg; charset=binary")

    def route_octet_jpg(self) -> None:
        self.reply(JPEG, "application/octet-stream")

    def route_untyped_png(self) -> None:
        self.reply(PNG, None)

    def route_octet_text(self) -> None:
        self.reply(b"just some words, no picture here", "application/octet-stream")

    def route_page_html(self) -> None:
        self.reply(b"<html><body><img src='/img.png'></body></html>", "text/html; charset=utf-8")

    def route_empty_png(self) -> None:
        self.reply(b"", "image/png")

    def route_short_png(self) -> None:
        self.reply(PNG[:10], "image/png", length=1000)  # then the connection closes

    def route_big_declared(self) -> None:
        self.reply(PNG[:10], "image/png", length=10**9)

    def route_big(self) -> None:
        self.start_stream("image/png")
        chunk = b"\x00" * 65536
        try:
            for _ in range(64):  # 4 MiB, far past the test's cap
                self.wfile.write(chunk)
        except OSError:
            pass

    def route_drip(self) -> None:
        self.start_stream("image/jpeg")
        self.drip(b"\xff\xd8\xff" + b"x" * 27)

    def route_drip_headers(self) -> None:
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\nX-Slow: ")
        self.drip(b"a" * 30)

    def drip(self, data: bytes) -> None:
        # One byte every 0.2 s for 6 s: far past the test's 1 s limit, yet a fetch that ignored the
        # limit fails the test instead of hanging it.
        try:
            for i in range(len(data)):
                if self.server.stopping.wait(0.2):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except OSError:
            pass

    def route_silent(self) -> None:
        self.server.stopping.wait(30)

    def route_garbage(self) -> None:
        self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    def route_redirect(self) -> None:  # /redirect/N: N hops, the last one a relative Location
        hops = int(self.path.rsplit("/", 1)[1])
        self.redirect(f"/redirect/{hops - 1}" if hops > 1 else "../img.png")

    def route_to(self) -> None:  # /to?URL: one redirect to URL
        self.redirect(unquote(urlsplit(self.path).query))

    def route_no_location(self) -> None:
        self.redirect(None)


class LocalWeb(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        if isinstance(server, LocalWeb):
            server.stopping.set()  # lets dripping and silent handlers return
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def web() -> Iterator[LocalWeb]:
    yield from serve(LocalWeb())


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, web: LocalWeb) -> list[tuple]:
    """Every address a socket connects to; anything but the local web fails the test on the spot."""
    attempts: list[tuple] = []

    def connect(sock: socket.socket, address: tuple) -> None:
        attempts.append(address)
        if tuple(address[:2]) != ("127.0.0.1", web.port):
            raise AssertionError(f"a connection to {address} was attempted")
        REAL_CONNECT(sock, address)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected connection attempt {args}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    return attempts


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make `answers` the DNS; returns the names looked up, in order."""
    lookups: list[str] = []

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list:
        lookups.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def timed_fetch(url: str, limits: FetchLimits) -> tuple[float, str]:
    """Seconds until fetch_image(url) gave up (it must), and why."""
    start = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_image(url, limits, allow_loopback=True)
    return time.monotonic() - start, str(caught.value)


# --- downloads that work ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "content_type"), [("/img.png", PNG, "image/png"), ("/img.jpg", JPEG, "image/jpeg")]
)
def test_fetches_an_image_byte_for_byte(
    web: LocalWeb, connections: list, path: str, data: bytes, content_type: str
) -> None:
    image = fetch_image(web.url(path), allow_loopback=True)
    assert image == FetchedImage(url=web.url(path), content=data, content_type=content_type)
    assert Image.open(io.BytesIO(image.content)).size == (40, 30)
    assert connections == [("127.0.0.1", web.port)]


def test_sends_user_agent_and_the_host_it_was_given(web: LocalWeb, connections: list) -> None:
    fetch_image(web.url("/img.png?size=large&x=a b"), allow_loopback=True)
    path, headers = web.requests[-1]
    assert path == "/img.png?size=large&x=a%20b"
    assert headers["User-Agent"] == USER_AGENT == "wildlife-classifier/0.1"
    assert headers["Host"] == f"127.0.0.1:{web.port}"


@pytest.mark.parametrize(
    ("path", "data", "sniffed"), [("/octet.jpg", JPEG, "image/jpeg"), ("/untyped.png", PNG, "image/png")]
)
def test_untyped_response_is_accepted_when_the_bytes_are_an_image(
    web: LocalWeb, connections: list, path: str, data: bytes, sniffed: str
) -> None:
    image = fetch_image(web.url(path), allow_loopback=True)
    assert (image.content, image.content_type) == (data, sniffed)


def test_redirect_chain_within_the_limit_is_followed(web: LocalWeb, connections: list) -> None:
    image = fetch_image(web.url("/redirect/3"), FetchLimits(max_redirects=3), allow_loopback=True)
    assert image.content == PNG
    assert image.url == web.url("/img.png")  # "../img.png" resolved against /redirect/1
    assert [path for path, _ in web.requests[-4:]] == [
        "/redirect/3",
        "/redirect/2",
        "/redirect/1",
        "/img.png",
    ]


def test_host_is_looked_up_once_and_the_checked_address_is_used(
    web: LocalWeb, connections: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebinding DNS answers loopback (allowed here) first, then a private address: the fetch must
    # never ask twice, and must still send the name as Host.
    answers = {"pics.example": ["127.0.0.1"]}
    lookups = fake_dns(monkeypatch, answers)
    original = socket.getaddrinfo

    def rebinding(host: str, *args: object, **kwargs: object) -> list:
        result = original(host, *args, **kwargs)
        answers["pics.example"] = ["10.0.0.1"]
        return result

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    image = fetch_image(f"http://pics.example:{web.port}/img.png", allow_loopback=True)
    assert image.content == PNG
    assert lookups == ["pics.example"]
    assert web.requests[-1][1]["Host"] == f"pics.example:{web.port}"
    assert connections == [("127.0.0.1", web.port)]


# --- responses that are refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("/page.html", r"sent text/html, not an image; paste the address of the image itself"),
        ("/octet-text", r"sent application/octet-stream, not an image"),
        ("/nothing-here", r"the server answered 404 Not Found"),
        ("/empty.png", r"sent an empty file"),
        ("/short.png", r"cut short"),
        ("/garbage", r"broken answer"),
        ("/no-location", r"redirects but says nowhere to"),
    ],
)
def test_bad_responses_are_refused_with_their_reason(
    web: LocalWeb, connections: list, path: str, match: str
) -> None:
    with pytest.raises(FetchError, match=match):
        fetch_image(web.url(path), allow_loopback=True)


def test_body_over_the_byte_cap_is_refused(web: LocalWeb, connections: list) -> None:
    with pytest.raises(FetchError, match=r"larger than 97.7 KB, the most this app downloads"):
        fetch_image(web.url("/big"), FetchLimits(max_bytes=100_000), allow_loopback=True)


def test_content_length_over_the_cap_is_refused_before_reading(web: LocalWeb, connections: list) -> None:
    with pytest.raises(FetchError, match=r"larger than 20 MB"):
        fetch_image(web.url("/big-declared"), allow_loopback=True)


def test_default_limits() -> None:
    assert FetchLimits() == FetchLimits(
        timeout=10.0, total_seconds=20.0, max_bytes=20 * 2**20, max_redirects=3
    )
    with pytest.raises(FrozenInstanceError):
        FetchLimits().max_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_endless_drip_is_cut_off_by_the_total_time_limit(web: LocalWeb, connections: list, path: str) -> None:
    # Every byte arrives well within the 5 s read timeout; only the total limit can stop this.
    elapsed, message = timed_fetch(web.url(path), FetchLimits(timeout=5, total_seconds=1))
    assert "took longer than 1 s; try a smaller image or another link" in message
    assert 0.9 < elapsed < 2.5


def test_silent_server_times_out(web: LocalWeb, connections: list) -> None:
    elapsed, message = timed_fetch(web.url("/silent"), FetchLimits(timeout=0.5))
    assert "the server did not answer within 0.5 s; try again later" in message
    assert elapsed < 2


def test_too_many_redirects_are_refused(web: LocalWeb, connections: list) -> None:
    with pytest.raises(FetchError, match=r"redirects more than 3 times"):
        fetch_image(web.url("/redirect/4"), allow_loopback=True)
    with pytest.raises(FetchError, match=r"redirects more than 0 times"):
        fetch_image(web.url("/redirect/1"), FetchLimits(max_redirects=0), allow_loopback=True)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (
            "http://10.0.0.1/",
            r"Refused http://10\.0\.0\.1/ \(redirected from .*private network address \(10\.0\.0\.1\)",
        ),
        ("http://169.254.169.254/latest/meta-data", r"cloud metadata address \(169\.254\.169\.254\)"),
        ("http://[fd00:ec2::254]/", r"cloud metadata address"),
        ("http://0xa9fea9fe/", r"cloud metadata address"),
        ("//192.168.1.1/router.png", r"Refused http://192\.168\.1\.1/router\.png .*private network address"),
        ("http://[::ffff:10.0.0.1]/", r"private network address \(10\.0\.0\.1 inside"),
        ("file:///etc/passwd", r"uses the file scheme"),
        ("gopher://example.com/", r"uses the gopher scheme"),
    ],
)
def test_redirect_to_a_forbidden_address_is_refused_without_going_there(
    web: LocalWeb, connections: list, target: str, match: str
) -> None:
    with pytest.raises(FetchError, match=match) as caught:
        fetch_image(web.url("/to?" + target), allow_loopback=True)
    assert f"(redirected from {web.url('/to?')}" in str(caught.value)
    assert connections == [("127.0.0.1", web.port)]  # the local web only: the connect guard saw no other


def test_redirect_to_a_name_that_resolves_privately_is_refused(
    web: LocalWeb, connections: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"internal.example": ["192.168.0.10"]})
    with pytest.raises(FetchError, match=r"resolves to a private network address \(192\.168\.0\.10\)"):
        fetch_image(web.url("/to?http://internal.example/cat.jpg"), allow_loopback=True)


# --- addresses refused before any connection -----------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.1/",
    "http://127.000.000.001/",
    "http://127.0.0.1./",
    "http://１２７．０．０．１/",  # fullwidth digits and dots: IDNA maps them to 127.0.0.1
    "http://①②⑦.0.0.1/",  # circled digits, NFKC-mapped the same way
    "http://127。0。0。1/",  # ideographic full stops
    "http://127.127.127.127/",
    "http://0x7f.0.0.0x1/",
    "http://0177.1/",
    "http://[0::1]/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]:8080/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://cams.localhost/",
    "https://127.0.0.1:443/",
]
EMBEDDED_SPELLINGS = [
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[2002:7f00:1::]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    "http://[64:ff9b::7f00:1]/",  # NAT64
]
OTHER_FORBIDDEN = [
    ("http://0/", r"unspecified address \(0\.0\.0\.0\)"),
    ("http://0.0.0.0:8080/", r"unspecified address"),
    ("http://[::]/", r"unspecified address"),
    ("http://10.0.0.1/", r"private network address \(10\.0\.0\.1\)"),
    ("http://172.16.5.4/", r"private network address"),
    ("http://192.168.1.1/", r"private network address"),
    ("http://[fc00::1]/", r"private network address"),
    ("http://[fd12:3456::1]/", r"private network address"),
    ("http://169.254.169.254/latest/meta-data/", r"cloud metadata address \(169\.254\.169\.254\)"),
    ("http://2852039166/", r"cloud metadata address \(169\.254\.169\.254\)"),
    ("http://0251.0376.0251.0376/", r"cloud metadata address \(169\.254\.169\.254\)"),
    ("http://0xa9.0xfe.0xa9.0xfe/", r"cloud metadata address \(169\.254\.169\.254\)"),
    ("http://169.254.43518/", r"cloud metadata address \(169\.254\.169\.254\)"),
    ("http://[::ffff:a9fe:a9fe]/", r"cloud metadata address \(169\.254\.169\.254 inside"),
    ("http://[64:ff9b::a9fe:a9fe]/", r"cloud metadata address \(169\.254\.169\.254 inside"),
    ("http://[2002:a9fe:a9fe::]/", r"cloud metadata address \(169\.254\.169\.254 inside"),
    ("http://[fd00:ec2::254]/", r"cloud metadata address \(fd00:ec2::254\)"),
    ("http://100.100.100.200/", r"cloud metadata address"),
    ("http://[::ffff:169.254.169.254]/", r"cloud metadata address"),
    ("http://169.254.1.1/", r"link-local address"),
    ("http://[fe80::1]/", r"link-local address"),
    ("http://[fe80::1%25eth0]/", r"link-local address"),
    ("http://100.64.0.1/", r"shared \(carrier-grade NAT\) address"),
    ("http://224.0.0.1/", r"multicast address"),
    ("http://[ff02::1]/", r"multicast address"),
    ("http://[ff0e::1]/", r"multicast address \(ff0e::1\)"),
    ("http://239.255.255.250/", r"multicast address"),
    ("http://[fec0::1]/", r"site-local address"),
    ("http://[100::1]/", r"reserved address"),
    ("http://10.1/", r"private network address \(10\.0\.0\.1\)"),
    ("http://240.0.0.1/", r"reserved address"),
    ("http://255.255.255.255/", r"reserved address"),
    ("http://192.0.2.10/", r"special-purpose \(non-public\) address"),
    ("http://198.18.0.1/", r"special-purpose"),
    ("http://[2001:db8::1]/", r"special-purpose"),
    ("http://[::ffff:8.8.8.8]/", r"IPv4-mapped IPv6 address"),
    ("http://[2002:a00:1::]/", r"private network address \(10\.0\.0\.1 inside 2002:a00:1::\)"),
]
MALFORMED = [
    ("ftp://example.com/cat.jpg", r"uses the ftp scheme, not http or https"),
    ("file:///etc/passwd", r"uses the file scheme"),
    ("javascript:alert(1)", r"uses the javascript scheme"),
    ("data:image/png;base64,iVBORw0KGgo=", r"uses the data scheme"),
    ("example.com/cat.jpg", r"uses the no scheme"),
    ("", r"is empty"),
    ("   ", r"is empty"),
    ("http:///cat.jpg", r"has no host name"),
    ("http://user:secret@example.com/cat.jpg", r"contains a user name or password"),
    ("http://example.com@10.0.0.1/", r"contains a user name or password"),
    ("http://[::1/", r"not a well-formed address"),
    ("http://example.com:99999/", r"not a well-formed address"),
    ("http://example.com:http/", r"not a well-formed address"),
    ("http://example.com:0/", r"names port 0"),
    ("http://a..b/", r"invalid host name"),
    ("http://%31%32%37.0.0.1/", r"invalid host name"),
    ("http://999.1.1.1/", r"invalid host name"),
    ("http://[v1.fe]/", r"invalid host name"),
    ("http://" + "a" * 64 + ".com/", r"invalid host name"),
    ("http://example.com/" + "a" * 9000, r"longer than 8192 characters"),
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_loopback_in_every_spelling_is_refused(connections: list, url: str) -> None:
    for call in (check_url, fetch_image):
        with pytest.raises(
            FetchError, match=r"^Refused .*: it points at a loopback address .*only public web"
        ):
            call(url)
    assert connections == []


@pytest.mark.parametrize("url", EMBEDDED_SPELLINGS)
def test_ipv6_wrapping_loopback_is_refused_even_when_loopback_is_allowed(connections: list, url: str) -> None:
    for allow_loopback in (False, True):
        with pytest.raises(FetchError, match=r"points at a (loopback|special-purpose|IPv4-mapped)"):
            fetch_image(url, allow_loopback=allow_loopback)
    assert connections == []


@pytest.mark.parametrize(("url", "match"), OTHER_FORBIDDEN)
def test_non_public_addresses_are_refused_even_when_loopback_is_allowed(
    connections: list, url: str, match: str
) -> None:
    for allow_loopback in (False, True):
        with pytest.raises(FetchError, match=match):
            check_url(url, allow_loopback=allow_loopback)
        with pytest.raises(FetchError, match=r"only public web addresses can be fetched"):
            fetch_image(url, allow_loopback=allow_loopback)
    assert connections == []


@pytest.mark.parametrize(("url", "match"), MALFORMED)
def test_malformed_urls_and_other_schemes_are_refused(connections: list, url: str, match: str) -> None:
    with pytest.raises(FetchError, match=match):
        fetch_image(url, allow_loopback=True)
    assert connections == []


def test_the_local_web_itself_is_refused_without_allow_loopback(web: LocalWeb, connections: list) -> None:
    with pytest.raises(FetchError, match=r"loopback address \(127\.0\.0\.1\)"):
        fetch_image(web.url("/img.png"))
    assert connections == []


@pytest.mark.parametrize(
    ("answers", "match"),
    [
        ({"cats.example": ["10.1.2.3"]}, r"it resolves to a private network address \(10\.1\.2\.3\)"),
        ({"cats.example": [PUBLIC_IP, "169.254.169.254"]}, r"resolves to a cloud metadata address"),
        ({"cats.example": ["2606:4700::6810:84e5", "::1"]}, r"resolves to a loopback address \(::1\)"),
        (
            {"cats.example": ["::ffff:192.168.0.1"]},
            r"resolves to a private network address \(192\.168\.0\.1 inside",
        ),
        ({}, r"^Could not find host cats\.example for http://cats\.example/a\.jpg; check the address"),
    ],
)
def test_names_are_judged_by_every_address_they_resolve_to(
    connections: list, monkeypatch: pytest.MonkeyPatch, answers: dict, match: str
) -> None:
    fake_dns(monkeypatch, answers)
    with pytest.raises(FetchError, match=match):
        fetch_image("http://cats.example/a.jpg")
    assert connections == []


def test_check_url_returns_what_a_fetch_connects_to(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"cats.example": [PUBLIC_IP, "2606:4700::6810:84e5", PUBLIC_IP]})
    checked = check_url("HTTPS://Cats.Example./a b.jpg?w=1#frag")
    assert (checked.scheme, checked.host, checked.port, checked.target) == (
        "https",
        "cats.example",
        443,
        "/a%20b.jpg?w=1",
    )
    assert checked.addresses == (PUBLIC_IP, "2606:4700::6810:84e5")
    assert check_url("http://[2606:4700::1]:8080").addresses == ("2606:4700::1",)
    assert check_url("http://8.8.8.8").port == 80


# --- connection failures ----------------------------------------------------------------------------------


def test_closed_port_is_a_fetch_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=r"could not connect to 127\.0\.0\.1 \(Connection refused\)"):
        fetch_image(f"http://127.0.0.1:{port}/img.png", allow_loopback=True)


def test_https_to_a_plain_http_server_is_a_fetch_error(web: LocalWeb, connections: list) -> None:
    with pytest.raises(FetchError, match=r"no secure connection could be made"):
        fetch_image(web.url("/img.png", scheme="https"), allow_loopback=True)


def test_tls_names_the_host_not_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # A TLS server without a certificate: the handshake fails, after it has read the SNI name.
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def handshake() -> None:
            conn, _ = listener.accept()
            with conn, pytest.raises(ssl.SSLError):
                context.wrap_socket(conn, server_side=True)

        thread = threading.Thread(target=handshake, daemon=True)
        thread.start()
        fake_dns(monkeypatch, {"pics.example": ["127.0.0.1"]})
        with pytest.raises(FetchError, match=r"no secure connection"):
            fetch_image(f"https://pics.example:{port}/cat.jpg", FetchLimits(timeout=5), allow_loopback=True)
        thread.join(5)
    assert names == ["pics.example"]


@pytest.fixture(scope="module")
def tls_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalWeb, Path]]:
    """The local web over TLS, with a self-signed certificate for pics.example."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
    command += " -subj /CN=pics.example -addext subjectAltName=DNS:pics.example"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = LocalWeb()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in serve(server):
        yield running, cert


def test_https_fetch_verifies_the_certificate_against_the_host_name(
    tls_web: tuple[LocalWeb, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_web
    fake_dns(monkeypatch, {"pics.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    with pytest.raises(FetchError, match=r"certificate is not valid for pics\.example \(self.signed"):
        fetch_image(server.url("/img.png", "https", "pics.example"), allow_loopback=True)

    trusting = functools.partial(ssl.create_default_context, cafile=str(cert))
    monkeypatch.setattr(ssl, "create_default_context", trusting)
    image = fetch_image(server.url("/img.png", "https", "pics.example"), allow_loopback=True)
    assert image.content == PNG
    assert server.requests[-1][1]["Host"] == f"pics.example:{server.port}"
    with pytest.raises(FetchError, match=r"certificate is not valid for other\.example \(Hostname mismatch"):
        fetch_image(server.url("/img.png", "https", "other.example"), allow_loopback=True)


# --- nothing but FetchError, whatever is pasted ------------------------------------------------------------


def plainly_public(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    if ip.is_multicast or not ip.is_global or ip in ipaddress.ip_network("100.64.0.0/10"):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        wrapped = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        return all(v4 is None or v4.is_global for v4 in wrapped)
    return True


def any_dns(host: str, port: int, *args: object, **kwargs: object) -> list:
    """A DNS that answers every name, one of public, private, metadata or "no such host"."""
    choice = zlib.crc32(host.encode("utf-8", "replace")) % 4
    if choice == 3:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    ip = [PUBLIC_IP, "10.9.8.7", "169.254.169.254"][choice]
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]


def refuse_to_connect(sock: socket.socket, address: tuple) -> None:
    assert plainly_public(address[0]), f"connect() reached {address}"
    raise ConnectionRefusedError(111, "Connection refused (test)")


HOSTS = st.one_of(
    st.sampled_from(
        [h.split("//", 1)[1].split("/", 1)[0] for h in LOOPBACK_SPELLINGS + EMBEDDED_SPELLINGS]
        + [u.split("//", 1)[1].split("/", 1)[0] for u, _ in OTHER_FORBIDDEN]
        + ["example.com", "cats.example", PUBLIC_IP, "", "[", "@", "[::1", "a@b", "%00"]
    ),
    st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
    st.from_regex(r"[a-zA-Z0-9.\-_%\[\]:@x]{0,24}", fullmatch=True),
    st.text(max_size=16),
)
URLS = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, auth, host, port, path: f"{scheme}://{auth}{host}{port}/{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "file", "javascript", ""]),
        st.sampled_from(["", "user@", "u:p@", "@"]),
        HOSTS,
        st.one_of(
            st.just(""), st.integers(-5, 70000).map(":{}".format), st.text(max_size=4).map(":{}".format)
        ),
        st.text(max_size=24),
    ),
)


@settings(max_examples=examples(400), deadline=None)
@given(url=URLS)
def test_any_pasted_text_gives_a_one_line_fetch_error_and_no_forbidden_connection(url: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", any_dns)
        patch.setattr(socket.socket, "connect", refuse_to_connect)
        patch.setattr(socket, "create_connection", refuse_to_connect)
        try:
            checked = check_url(url)
        except FetchError as error:
            assert len(str(error).splitlines()) == 1
        else:
            assert all(plainly_public(address) for address in checked.addresses)
        with pytest.raises(FetchError) as caught:
            fetch_image(url, FetchLimits(timeout=1, total_seconds=2))
        assert len(str(caught.value).splitlines()) == 1
        assert str(caught.value).startswith(("Refused ", "Could not "))
