"""Fetch a user-supplied image URL without letting it reach inside our network (SSRF).

Refused: anything but https, hosts that resolve to loopback, private, link-local (cloud
metadata at 169.254.169.254), shared/CGNAT, multicast, reserved or unspecified addresses, and
redirects to any of those. The name is resolved once, at connect time, inside the HTTP client's
network backend (``guarded_transport``): every address is checked and the socket goes to a checked
address, so a DNS answer that changes between check and connect (rebinding) has nothing to change.
Size and time are bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_REDIRECTS = 3


class UnsafeUrlError(ValueError):
    """The URL may not be fetched (scheme, address or redirect); the message says why."""


class UrlFetchError(ValueError):
    """The URL was allowed but did not yield a file (HTTP error, too large, too slow)."""


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a public unicast address, or None if it is."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_problem(str(ip.ipv4_mapped))
        if ip in NAT64:
            return address_problem(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (itself, if it is an IP literal), sorted.

    Raises:
        UrlFetchError: the name does not resolve.
    """
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlFetchError(f"cannot resolve {host}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """The host and port to connect to for ``url``, if its shape is acceptable.

    Only the URL's form is checked here (scheme, host, no credentials); the addresses it resolves to
    are checked by ``fetch_public_url`` before it connects.

    Raises:
        UnsafeUrlError: a scheme other than https (http too with ``allow_private``), no host, or
            credentials in the URL.
    """
    parts = urlsplit(url)
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise UnsafeUrlError(
            f"only {' and '.join(allowed_schemes)} URLs are fetched, not {parts.scheme or 'no scheme'}"
        )
    if not parts.hostname:
        raise UnsafeUrlError("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrlError("URLs with credentials are not fetched")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


async def fetch_public_url(
    url: str, *, max_bytes: int, timeout: float, allow_private: bool = False
) -> tuple[bytes, str]:
    """The body and content type of ``url``; raises ``UnsafeUrlError`` or ``UrlFetchError``."""
    try:
        return await asyncio.wait_for(_fetch(url, max_bytes, allow_private), timeout=timeout)
    except TimeoutError:
        raise UrlFetchError(f"fetching the URL took longer than {timeout:.0f} s") from None


async def _fetch(url: str, max_bytes: int, allow_private: bool) -> tuple[bytes, str]:
    transport = httpx.AsyncHTTPTransport() if allow_private else guarded_transport()
    async with httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=30.0) as http:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private=allow_private)
            try:
                async with http.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if not response.is_success:
                        raise UrlFetchError(f"the URL answered HTTP {response.status_code}")
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise UrlFetchError(
                            f"the file is {declared} bytes; the limit is {max_bytes}"
                        )
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise UrlFetchError(
                                f"the file is larger than the {max_bytes}-byte limit"
                            )
                    return bytes(body), response.headers.get("content-type", "")
            except httpx.HTTPError as exc:
                raise UrlFetchError(f"fetching the URL failed ({type(exc).__name__})") from None
    raise UnsafeUrlError(f"more than {MAX_REDIRECTS} redirects")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case, default port spelled out)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def check_download_url(url: str, *, allowed_origins: Collection[str] = ()) -> None:
    """Refuse ``url`` unless its origin is explicitly allowed or it is an https URL (its addresses
    are checked when ``guarded_transport`` connects).

    Raises:
        UnsafeUrlError: why not.
    """
    if origin(url) not in allowed_origins:
        check_url(url, allow_private=False)


class CheckedAddressBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving each host once and connecting only to an address
    that passed ``address_problem`` (all of a host's addresses must pass).

    TLS still verifies the certificate against the host name: httpcore starts TLS with the URL's
    host, whatever address the socket went to.
    """

    def __init__(self, allowed_hosts: Collection[tuple[str, int]] = ()) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allowed = frozenset((host.lower(), port) for host, port in allowed_hosts)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        """A socket to a checked address of ``host`` (or to an allowed origin as named).

        Raises:
            UnsafeUrlError: one of the host's addresses is not public.
        """
        if (host.lower(), port) in self._allowed:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = await resolve(host, port)
        except UrlFetchError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise UnsafeUrlError(f"{host} points at {problem} ({address})")
        failure: Exception = httpcore.ConnectError(f"no address of {host} answered")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        """Never: a URL names a host, not a socket file."""
        raise UnsafeUrlError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        """httpcore's retry back-off (as the inner backend sleeps)."""
        await self._inner.sleep(seconds)


def guarded_transport(
    *, allowed_origins: Collection[str] = (), limits: httpx.Limits | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go only to checked public addresses, except to the
    ``scheme://host:port`` origins in ``allowed_origins`` (a local emulator, the provider's API)."""
    transport = httpx.AsyncHTTPTransport()
    limits = limits or httpx.Limits()
    allowed = []
    for allowed_origin in allowed_origins:
        parts = urlsplit(allowed_origin)
        if parts.hostname:
            allowed.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    # httpx takes no network backend, so the pool it would build is replaced by the same pool
    # with ours (same TLS defaults, same limits).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=CheckedAddressBackend(allowed),
    )
    return transport
