"""Fetch a photo from a URL a stranger pasted into a public app, without becoming their proxy (SSRF).

The app runs on a cloud machine that can reach things the visitor cannot: its own loopback services,
the private network around it and the cloud metadata endpoint that hands out credentials. So:

* every address a host name resolves to must be public, and the socket then connects to exactly the
  address that was checked (no second lookup a DNS server could answer differently: "DNS rebinding");
* the host name still goes in the Host header and is what TLS verifies the certificate against;
* redirects are followed by hand, each hop checked the same way;
* time and bytes are capped, so a server that drips bytes forever or sends gigabytes cannot pin a worker.

Failures are `FetchError`s whose text is one line telling the visitor what to do.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

__all__ = [
    "DEFAULT_LIMITS",
    "USER_AGENT",
    "CheckedURL",
    "FetchError",
    "FetchLimits",
    "FetchedImage",
    "check_url",
    "fetch_image",
]

USER_AGENT = "wildlife-classifier/0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PUBLIC_ONLY = "only public web addresses can be fetched."
_MAX_URL_CHARS = 8192
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Servers (S3 among them) label photos like this; then the bytes themselves must say "image".
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# Named separately because they hand out cloud credentials; most are also link-local or private.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux routes 0.0.0.0 to this machine
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# What the WHATWG URL standard and inet_aton treat as an IPv4 number: 0x7f, 0177, 2130706433.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class FetchError(ValueError):
    """A URL that was refused or could not be fetched; `str()` is one line for the visitor."""

    def __init__(self, message: str) -> None:
        # Server-supplied text (reasons, URLs) could smuggle line breaks into a log or the page.
        super().__init__("".join(c if c.isprintable() else "?" for c in message))


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 10.0  # seconds for each connect, send or read
    total_seconds: float = 20.0  # the whole fetch, redirects included: stops servers that drip forever
    max_bytes: int = 20 * 2**20
    max_redirects: int = 3


DEFAULT_LIMITS = FetchLimits()


@dataclass(frozen=True)
class FetchedImage:
    url: str  # after redirects
    content: bytes = field(repr=False)
    content_type: str  # e.g. "image/jpeg"; sniffed from the bytes when the server said octet-stream


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed every check, with the addresses a fetch may connect to."""

    url: str
    scheme: str  # "http" or "https"
    host: str  # ASCII (IDNA) name or IP literal without brackets: Host header and TLS name
    port: int
    target: str  # path and query to request, percent-encoded
    addresses: tuple[str, ...]  # every one public (or loopback when allowed)


def check_url(url: str, *, allow_loopback: bool = False) -> CheckedURL:
    """Parse, validate and resolve `url`; raise FetchError unless every address it reaches is public.

    Connects to nothing. `allow_loopback` exists for tests with a local server: it unlocks 127.0.0.0/8
    and ::1 only, never private, link-local or metadata addresses.
    """
    return _check(url, allow_loopback, _show(url))


def fetch_image(
    url: str, limits: FetchLimits = DEFAULT_LIMITS, *, allow_loopback: bool = False
) -> FetchedImage:
    """Download the image at `url` within `limits`; raise FetchError with a one-line reason otherwise."""
    deadline = time.monotonic() + limits.total_seconds
    current, shown = url, _show(url)
    for hop in range(limits.max_redirects + 1):
        checked = _check(current, allow_loopback, shown)
        result = _fetch_once(checked, limits, deadline, shown)
        if isinstance(result, FetchedImage):
            return result
        if hop == limits.max_redirects:
            break
        current = urljoin(checked.url, result)  # Location may be relative
        shown = f"{_show(current)} (redirected from {_show(url)})"
    raise FetchError(
        f"Refused {_show(url)}: it redirects more than {limits.max_redirects} times; "
        "paste the address the image finally lives at."
    )


# --- checking -----------------------------------------------------------------------------------------


def _check(url: str, allow_loopback: bool, shown: str) -> CheckedURL:
    def refuse(
        reason: str, advice: str = "paste a full http:// or https:// link to the photo."
    ) -> FetchError:
        return FetchError(f"Refused {shown}: it {reason}; {advice}")

    if not isinstance(url, str) or not url.strip():
        raise refuse("is empty")
    url = url.strip()
    if len(url) > _MAX_URL_CHARS:
        raise refuse(f"is longer than {_MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        raw_host = parts.hostname
    except ValueError:  # bad [IPv6] brackets, non-numeric or out-of-range port, NFKC tricks
        raise refuse("is not a well-formed address") from None
    if parts.scheme not in ("http", "https"):
        raise refuse(f"uses the {parts.scheme or 'no'} scheme, not http or https")
    if parts.username is not None or parts.password is not None:
        raise refuse("contains a user name or password", "paste the link without them.")
    if not raw_host:
        raise refuse("has no host name")
    if port == 0:
        raise refuse("names port 0")
    port = port or (443 if parts.scheme == "https" else 80)

    host, literal = _normalise_host(raw_host, bracketed="[" in parts.netloc)
    if host is None:
        raise refuse("has an invalid host name", "check the address and paste it again.")
    if literal is not None:
        addresses = [literal]
        verb = "points at"
    elif not allow_loopback and (host == "localhost" or host.endswith(".localhost")):
        raise refuse(f"points at a loopback address ({host})", _PUBLIC_ONLY)  # RFC 6761: never ask DNS
    else:
        addresses = _resolve(host, port, shown)
        verb = "resolves to"
    for address in addresses:  # all of them: a connection may fall back to any
        problem = _address_problem(address, allow_loopback)
        if problem:
            raise refuse(f"{verb} {problem}", _PUBLIC_ONLY)
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~", errors="replace")
    if parts.query:
        target += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=~", errors="replace")
    unique = tuple(dict.fromkeys(str(a) for a in addresses))
    return CheckedURL(url, parts.scheme, host, port, target, unique)


def _normalise_host(raw: str, bracketed: bool) -> tuple[str | None, IPAddress | None]:
    """(ASCII host, IP when the host is a literal); (None, None) when the host is not valid.

    Legacy spellings (127.1, 0x7f.1, 0177.0.0.1, 2130706433, fullwidth digits) become the IPv4
    address a resolver would connect to, so they are judged by the address and never reach DNS.
    """
    if bracketed:
        try:
            ip = ipaddress.IPv6Address(raw)  # keeps a %zone, which _address_problem refuses
        except ValueError:
            return None, None
        return str(ip), ip
    raw = raw.removesuffix(".")  # "localhost." is "localhost"
    try:
        ip = ipaddress.IPv4Address(raw)
        return str(ip), ip
    except ValueError:
        pass
    try:
        host = raw.encode("idna").decode("ascii").lower().removesuffix(".")
    except UnicodeError:  # empty or over-long label, unmappable characters
        return None, None
    if len(host) > 253 or not _HOST_NAME.fullmatch(host):
        return None, None
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:  # e.g. 999.1: not an address, and numbers are not DNS names either
            return None, None
        return str(ip), ip
    return host, None


def _resolve(host: str, port: int, shown: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        infos = []
    addresses = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0])
        if family == socket.AF_INET6 and sockaddr[3]:  # a scope id: only link-local needs one
            text = f"{text.split('%')[0]}%{sockaddr[3]}"
        addresses.append(ipaddress.ip_address(text))
    if not addresses:
        raise FetchError(f"Could not find host {host} for {shown}; check the address for typos.")
    return addresses


def _address_problem(ip: IPAddress, allow_loopback: bool) -> str | None:
    """What kind of non-public address `ip` is ("a loopback address (::1)"), or None when public."""
    if allow_loopback and ip.is_loopback and (ip.version == 4 or ip == ipaddress.IPv6Address("::1")):
        return None
    for inner in _embedded_ipv4(ip):  # where the packets really go: name that, not the wrapper
        inner_kind = _kind(inner)
        if inner_kind:
            return f"{inner_kind} ({inner} inside {ip})"
    kind = _kind(ip)
    if kind is None and ip.version == 6 and ip.scope_id:
        kind = "a scoped IPv6 address"
    return f"{kind} ({ip})" if kind else None


def _kind(ip: IPAddress) -> str | None:
    bare = _unscoped(ip)
    if bare in _METADATA:
        return "a cloud metadata address"
    if bare.is_loopback:
        return "a loopback address"
    if bare.is_unspecified or bare in _THIS_NETWORK:
        return "an unspecified address"
    if bare.version == 6 and (bare.ipv4_mapped or bare in _IPV4_COMPATIBLE):
        return "an IPv4-mapped IPv6 address"  # DNS never gives one for a real site
    if bare.is_link_local:
        return "a link-local address"
    if bare in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if bare.is_multicast:
        return "a multicast address"
    if any(bare in net for net in _PRIVATE if net.version == bare.version):
        return "a private network address"
    if bare.version == 6 and bare.is_site_local:
        return "a site-local address"
    if bare.is_reserved:
        return "a reserved address"
    if not bare.is_global:  # documentation, benchmarking, Teredo, protocol assignments, ...
        return "a special-purpose (non-public) address"
    return None


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a packet to `ip` may end up at: mapped, compatible, NAT64, 6to4 and Teredo."""
    bare = _unscoped(ip)
    if not isinstance(bare, ipaddress.IPv6Address):
        return []
    found = []
    if bare.ipv4_mapped:
        found.append(bare.ipv4_mapped)
    if (bare in _IPV4_COMPATIBLE and int(bare) > 1) or any(bare in net for net in _NAT64):  # not :: or ::1
        found.append(ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF))
    if bare.sixtofour:
        found.append(bare.sixtofour)
    if bare.teredo:
        found.extend(bare.teredo)
    return found


def _unscoped(ip: IPAddress) -> IPAddress:
    return ipaddress.ip_address(str(ip).split("%")[0])


def _show(url: object) -> str:
    text = url if isinstance(url, str) else repr(url)
    text = "".join(c if c.isprintable() else "?" for c in text.strip())
    return text if len(text) <= 120 else text[:117] + "..."


# --- fetching -----------------------------------------------------------------------------------------


def _fetch_once(checked: CheckedURL, limits: FetchLimits, deadline: float, shown: str) -> FetchedImage | str:
    """The image at `checked`, or the Location it redirects to."""
    if checked.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPSConnection(checked, limits.timeout, deadline)
    else:
        conn = _PinnedHTTPConnection(checked, limits.timeout, deadline)
    try:
        conn.request(
            "GET",
            checked.target,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Connection": "close"},
        )
        response = conn.getresponse()
        if response.status in _REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise FetchError(
                    f"Could not fetch {shown}: it redirects but says nowhere to; "
                    "paste the address the image finally lives at."
                )
            return location
        return _read_image(checked, response, limits, deadline, shown)
    except FetchError:
        raise
    except TimeoutError:
        if time.monotonic() >= deadline:
            raise FetchError(
                f"Could not fetch {shown}: the download took longer than {limits.total_seconds:g} s; "
                "try a smaller image or another link."
            ) from None
        raise FetchError(
            f"Could not fetch {shown}: the server did not answer within {limits.timeout:g} s; "
            "try again later or use another link."
        ) from None
    except ssl.SSLCertVerificationError as error:
        raise FetchError(
            f"Could not fetch {shown}: its security certificate is not valid for {checked.host} "
            f"({error.verify_message}); use another link."
        ) from None
    except ssl.SSLError as error:
        raise FetchError(
            f"Could not fetch {shown}: no secure connection could be made ({error.reason or error}); "
            "use another link."
        ) from None
    except (http.client.HTTPException, ValueError) as error:  # before OSError: RemoteDisconnected is both
        raise FetchError(
            f"Could not fetch {shown}: the server sent a broken answer ({type(error).__name__}); "
            "use another link."
        ) from None
    except OSError as error:
        raise FetchError(
            f"Could not fetch {shown}: could not connect to {checked.host} ({error.strerror or error}); "
            "check the link or try again later."
        ) from None
    finally:
        conn.close()


def _read_image(
    checked: CheckedURL, response: http.client.HTTPResponse, limits: FetchLimits, deadline: float, shown: str
) -> FetchedImage:
    if not 200 <= response.status < 300:
        answer = f"{response.status} {_show(response.reason)[:60]}".strip()
        raise FetchError(
            f"Could not fetch {shown}: the server answered {answer}; "
            "check that the link opens the photo in a browser."
        )
    declared_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if not declared_type.startswith("image/") and declared_type not in _UNTYPED:
        raise _not_an_image(shown, declared_type)
    declared_length = _content_length(response)
    if declared_length is not None and declared_length > limits.max_bytes:
        raise _too_big(shown, limits)
    content = _read_capped(response, limits, deadline, shown)
    if not content:
        raise FetchError(f"Could not use {shown}: the server sent an empty file; use another link.")
    if declared_length is not None and len(content) < declared_length:
        raise FetchError(f"Could not fetch {shown}: the download was cut short; try again.")
    content_type = declared_type
    if declared_type in _UNTYPED:
        content_type = _sniff(content) or ""
        if not content_type:
            raise _not_an_image(shown, declared_type or "no content type")
    return FetchedImage(url=checked.url, content=content, content_type=content_type)


def _read_capped(
    response: http.client.HTTPResponse, limits: FetchLimits, deadline: float, shown: str
) -> bytes:
    chunks, size = [], 0
    while chunk := response.read1(_CHUNK):  # read1: returns what has arrived, so the clocks are checked
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_big(shown, limits)
        if time.monotonic() >= deadline:
            raise TimeoutError
        chunks.append(chunk)
    return b"".join(chunks)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    if response.getheader("Transfer-Encoding"):  # chunked: Content-Length must be ignored
        return None
    try:
        length = int(response.getheader("Content-Length") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def _sniff(content: bytes) -> str | None:
    """The image type the first bytes clearly announce, or None."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if content.startswith(b"RIFF") and content[8:12] == b"WEBP":
        return "image/webp"
    if content.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    # "BM" alone starts plenty of text; a real bitmap also names a known header size.
    if content.startswith(b"BM") and int.from_bytes(content[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    return None


def _not_an_image(shown: str, content_type: str) -> FetchError:
    return FetchError(
        f"Could not use {shown}: the server sent {_show(content_type)[:60]}, not an image; "
        "paste the address of the image itself (right-click the photo, 'Copy image address')."
    )


def _too_big(shown: str, limits: FetchLimits) -> FetchError:
    return FetchError(
        f"Refused {shown}: the file is larger than {_size(limits.max_bytes)}, "
        "the most this app downloads; use a smaller image."
    )


def _size(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.3g} MB"
    return f"{n / 2**10:.3g} KB" if n >= 2**10 else f"{n} bytes"


# --- connections pinned to the checked address -----------------------------------------------------------


class _TimeUp(TimeoutError):
    """The fetch's overall deadline passed."""


class _DeadlineMixin:
    """Socket calls that never wait past the fetch deadline: total_seconds bounds even dripped headers."""

    deadline: float
    op_timeout: float

    def arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _TimeUp
        self.settimeout(min(self.op_timeout, remaining))  # type: ignore[attr-defined]

    def connect(self, *args, **kwargs):
        self.arm()
        return super().connect(*args, **kwargs)  # type: ignore[misc]

    def sendall(self, *args, **kwargs):
        self.arm()
        return super().sendall(*args, **kwargs)  # type: ignore[misc]

    def recv_into(self, *args, **kwargs):  # what http.client's buffered reader calls
        self.arm()
        return super().recv_into(*args, **kwargs)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    def do_handshake(self, *args, **kwargs):
        self.arm()
        return super().do_handshake(*args, **kwargs)


def _open_socket(checked: CheckedURL, op_timeout: float, deadline: float) -> socket.socket:
    """A TCP connection to one of the checked addresses, tried in resolver order like create_connection."""
    error: OSError = OSError("no address to connect to")
    for address in checked.addresses:
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        sock = _DeadlineSocket(family, socket.SOCK_STREAM)
        sock.deadline, sock.op_timeout = deadline, op_timeout
        try:
            sock.connect((address, checked.port))
            return sock
        except _TimeUp:
            sock.close()
            raise
        except OSError as failure:
            sock.close()
            error = failure
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the checked address; http.client still sends the host name as Host."""

    def __init__(self, checked: CheckedURL, op_timeout: float, deadline: float) -> None:
        super().__init__(checked.host, checked.port, timeout=op_timeout)
        self.checked, self.deadline = checked, deadline

    def connect(self) -> None:
        self.sock = _open_socket(self.checked, self.timeout, self.deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address; SNI and certificate checks use the host name from the URL."""

    def __init__(self, checked: CheckedURL, op_timeout: float, deadline: float) -> None:
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(checked.host, checked.port, timeout=op_timeout, context=context)
        self.checked, self.deadline = checked, deadline

    def connect(self) -> None:
        raw = _open_socket(self.checked, self.timeout, self.deadline)
        try:
            sock = self._context.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        sock.deadline, sock.op_timeout = self.deadline, self.timeout
        self.sock = sock
        sock.do_handshake()
