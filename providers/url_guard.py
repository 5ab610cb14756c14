"""Fetch a user-supplied image URL without letting it reach inside our network (SSRF).

Refused: anything but https, hosts that resolve to loopback, private, link-local (cloud
metadata at 169.254.169.254), shared/CGNAT, multicast, reserved or unspecified addresses, and
redirects to any of those. The address actually connected to is checked again, so a DNS answer
that changes between lookup and connect (rebinding) gains nothing. Size and time are bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urljoin, urlsplit

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
    async with httpx.AsyncClient(follow_redirects=False, timeout=30.0) as http:
        for _ in range(MAX_REDIRECTS + 1):
            host, port = check_url(url, allow_private=allow_private)
            if not allow_private:
                for address in await resolve(host, port):
                    problem = address_problem(address)
                    if problem:
                        raise UnsafeUrlError(f"{host} points at {problem} ({address})")
            try:
                async with http.stream("GET", url) as response:
                    if not allow_private:
                        _check_peer(response, host)
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


async def check_public_url(url: str, *, allowed_origins: Collection[str] = ()) -> bool:
    """Refuse ``url`` unless its origin is explicitly allowed or it is https to public addresses
    only; True when it is public (then the connected peer must be checked too: ``check_peer``).

    Raises:
        UnsafeUrlError: why not.
    """
    if origin(url) in allowed_origins:
        return False
    host, port = check_url(url, allow_private=False)
    try:
        addresses = await resolve(host, port)
    except UrlFetchError as exc:
        raise UnsafeUrlError(str(exc)) from None
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise UnsafeUrlError(f"{host} points at {problem} ({address})")
    return True


def check_peer(response: httpx.Response, host: str) -> None:
    """Refuse a response that came from a non-public address (DNS changed since the check)."""
    _check_peer(response, host)


def _check_peer(response: httpx.Response, host: str) -> None:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer:
        problem = address_problem(peer[0])
        if problem:
            raise UnsafeUrlError(f"{host} connected to {problem} ({peer[0]})")
