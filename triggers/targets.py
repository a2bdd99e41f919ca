"""Outbound safety: which webhook targets the service will call.

On a live network a target is `https` and every address its host resolves to is public
(no private, loopback, link-local, multicast, reserved or unspecified range: no SSRF). On the
local chain, loopback targets are allowed (`http` too) when `allow_loopback` is set. The check
runs at registration and again before every attempt (a host may resolve elsewhere later);
redirects are never followed, so a redirect cannot reach a refused address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from triggers.exceptions import TargetRefused

#: Longest target URL accepted.
MAX_URL_LENGTH: Final = 2048


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """What targets are allowed.

    Attributes:
        live: A live network (https and public addresses only).
        allow_loopback: Loopback allowed (honoured only when not `live`).
    """

    live: bool
    allow_loopback: bool

    @property
    def loopback_ok(self) -> bool:
        """Whether loopback targets are allowed."""
        return self.allow_loopback and not self.live


def origin(url: str) -> str:
    """`scheme://host:port` of a URL: the key of the per-target concurrency limit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _refused_address(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    for name in ("is_private", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(ip, name):
            return name[3:].replace("_", "-")
    if not ip.is_global:
        return "not global"
    return None


def check_target(url: str, policy: TargetPolicy) -> str:
    """Checks a target URL against `policy`, resolving its host.

    Returns:
        The URL's origin (`origin`).

    Raises:
        TargetRefused: malformed, wrong scheme, credentials in it, unresolvable, or an
            address in a refused range.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise TargetRefused(str(url)[:80], f"give an absolute URL of at most {MAX_URL_LENGTH}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(url, f"not a URL ({exc})") from None
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise TargetRefused(url, "give an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(url, "credentials in the URL are not allowed")
    if parts.scheme != "https" and not policy.loopback_ok:
        raise TargetRefused(url, "targets must use https")
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(url, f"host {host!r} does not resolve ({exc})") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    for address in addresses:
        why = _refused_address(address)
        if why is None:
            if parts.scheme != "https":
                raise TargetRefused(url, "only loopback targets may use http")
            continue
        if why == "loopback" and policy.loopback_ok:
            continue
        raise TargetRefused(url, f"{host} resolves to {address}, a {why} address")
    return origin(url)
