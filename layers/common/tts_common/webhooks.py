"""Signed webhooks: where a callback may point (SSRF), how a notification is signed, how often it is retried.

Used at submit (the API refuses a callback_url whose host resolves anywhere but the public internet) and again
at every delivery (tts_notifier), which connects to the very address it checked, so a DNS answer that changes
between the check and the connection (rebinding) cannot move the request onto a private network.

Signature (what receivers verify; README): `X-TTS-Signature: t=<unix seconds>,v1=<hex>` where
`v1 = HMAC-SHA256(secret, f"{t}." + body)`; during a secret's rotation grace period a second `v1=` carries the
signature with the previous secret (the new one first).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import random
import socket
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tts_common.exceptions import InvalidCallbackUrl

SIGNATURE_HEADER = "X-TTS-Signature"
EVENT_ID_HEADER = "X-TTS-Event-Id"
ATTEMPT_HEADER = "X-TTS-Delivery-Attempt"
USER_AGENT = "serverless-tts-webhooks/1"
SIGNATURE_VERSION = "v1"
MAX_URL_CHARS = 2048
# How long a receiver should accept a signed timestamp (the README's snippet uses it).
DEFAULT_TOLERANCE_S = 300

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# The cloud metadata endpoints (EC2/ECS/Lambda: IPv4; EC2 Nitro: IPv6). Link-local and ULA anyway, named here
# so that the refusal says what it is.
METADATA_ADDRESSES: frozenset[IpAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IANA's special-purpose ranges that are not globally reachable, refused whatever this Python's `is_global`
# says of them (its tables changed across 3.11 patch releases: 192.0.0.8 passed in some).
NON_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

Resolver = Callable[[str, int], Sequence[str]]
RESOLVE_TIMEOUT_S = 2.0
_resolver_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96,
    the deprecated compatible ::a.b.c.d): a private IPv4 must not pass in IPv6 clothing."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(int(address))
    return None


def refusal(address: IpAddress, *, allow_loopback: bool) -> str | None:
    """Why a webhook may not be sent to this address; None when it may (a public unicast address, or a
    loopback one when the local stack's tests allow it)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            why = refusal(embedded, allow_loopback=allow_loopback)
            return None if why is None else f"{why} (as {address})"
    if address in METADATA_ADDRESSES:
        return f"{address} is the cloud metadata address"
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_private or not address.is_global or any(address in n for n in NON_PUBLIC_NETWORKS):
        return f"{address} is not a public address"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked callback: connect to `address` (one that was checked), name `host` in TLS and Host."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_addresses(host: str, port: int, *, resolver: Resolver | None = None) -> list[IpAddress]:
    """Every address the host resolves to (a literal is itself), bounded by RESOLVE_TIMEOUT_S."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    future = _resolver_pool.submit(resolver or _system_resolve, host, port)
    try:
        raw = future.result(timeout=RESOLVE_TIMEOUT_S)
    except FutureTimeout:
        raise InvalidCallbackUrl("the host did not resolve in time", reason="dns_timeout") from None
    except (OSError, UnicodeError):
        raise InvalidCallbackUrl("the host does not resolve", reason="dns_failure") from None
    # A scope id (fe80::1%eth0) is no part of the address: strip it, the address is refused anyway.
    return sorted({ipaddress.ip_address(a.split("%", 1)[0]) for a in raw}, key=str)


def check_url(url: str, *, allow_loopback: bool, resolver: Resolver | None = None) -> Target:
    """The checked target of a callback URL, or InvalidCallbackUrl (400 at submit) saying why not.

    https only, unless `allow_loopback` (the local stack's own tests; never on AWS) and every address is a
    loopback one. Any refused address among a name's answers refuses the URL: the connection must not be
    able to land on one."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidCallbackUrl(f"a callback URL is at most {MAX_URL_CHARS} characters", reason="malformed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidCallbackUrl("the callback URL is not a URL", reason="malformed") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidCallbackUrl("a callback URL is https://", reason="scheme")
    if parts.username is not None or parts.password is not None or parts.fragment or not parts.hostname:
        raise InvalidCallbackUrl(
            "a callback URL has a host and no credentials or fragment", reason="malformed"
        )
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise InvalidCallbackUrl("a callback URL has no spaces or control characters", reason="malformed")
    host = parts.hostname.rstrip(".").lower()
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolve_addresses(host, port, resolver=resolver)
    if not addresses:
        raise InvalidCallbackUrl("the host does not resolve", reason="dns_failure")
    for address in addresses:
        why = refusal(address, allow_loopback=allow_loopback)
        if why is not None:
            raise InvalidCallbackUrl(f"the callback host is refused: {why}", reason="address")
    if parts.scheme != "https" and not (allow_loopback and all(_is_loopback(a) for a in addresses)):
        raise InvalidCallbackUrl("a callback URL is https://", reason="scheme")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=str(addresses[0]))


def _is_loopback(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


# -- signing ------------------------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=...,v1=...[,v1=...]`: one v1 per secret in force (the current one first)."""
    if not secrets:
        raise ValueError("at least one secret")
    return ",".join(
        [f"t={timestamp}", *(f"{SIGNATURE_VERSION}={signature(s, timestamp, body)}" for s in secrets)]
    )


def verify(
    body: bytes, header: str, secret: str, *, now: float, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> bool:
    """A receiver's check (the README's snippet does the same): a fresh timestamp and a matching v1."""
    parts = [p.strip().split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance_s:
        return False
    expected = signature(secret, int(stamps[0]), body)
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == SIGNATURE_VERSION)


# -- retries ------------------------------------------------------------------------------------------------

# Seconds before attempt n+1 (n = attempts made so far, from 1), the last repeated; SQS delays at most 900 s.
BACKOFF_S = (10, 30, 60, 120, 300, 600, 900)
MAX_DELAY_S = 900


def backoff_delay(
    attempts_made: int, *, scale: float = 1.0, rand: Callable[[], float] = random.random
) -> int:
    """The delay (whole seconds, SQS's DelaySeconds) before the next attempt: the schedule, +/-20 % jitter so
    that a receiver's outage does not bring every retry back at once, scaled (the local tests), capped."""
    base = BACKOFF_S[min(max(attempts_made, 1), len(BACKOFF_S)) - 1]
    return max(0, min(MAX_DELAY_S, round(base * scale * (0.8 + 0.4 * rand()))))


# -- delivery -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    status: int


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, *, connect_s: float, read_s: float) -> None:
        super().__init__(target.host, target.port, timeout=connect_s)
        self._address, self._read_s = target.address, read_s

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.settimeout(self._read_s)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, *, connect_s: float, read_s: float) -> None:
        super().__init__(target.host, target.port, timeout=connect_s, context=ssl.create_default_context())
        self._address, self._read_s = target.address, read_s

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        # SNI and the certificate check name the URL's host, whatever address was dialled.
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
        self.sock.settimeout(self._read_s)


MAX_RESPONSE_BYTES = 65_536


def post(
    target: Target, body: bytes, headers: dict[str, str], *, connect_s: float = 2.0, read_s: float = 5.0
) -> Response:
    """POST to the checked address, never following a redirect; the answer's body is read (bounded) and
    dropped. Network errors raise OSError (http.client's errors included)."""
    cls: Any = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = cls(target, connect_s=connect_s, read_s=read_s)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(MAX_RESPONSE_BYTES)
        return Response(status=answer.status)
    except http.client.HTTPException as exc:
        raise OSError(f"bad HTTP answer: {type(exc).__name__}") from exc
    finally:
        connection.close()
