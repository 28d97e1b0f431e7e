"""What a request says about its client: IP address and user agent.

Both are personal data; ``SESSIONKIT_STORE_IP`` and
``SESSIONKIT_STORE_USER_AGENT`` decide how much of them is kept.
"""

from __future__ import annotations

import ipaddress
import re

from django.http import HttpRequest

from django_sessionkit.conf import conf
from django_sessionkit.models import USER_AGENT_MAX_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# C0 and C1 controls: WSGI decodes header bytes as Latin-1, so 0x80-0x9f
# arrive as characters such as NEL (a line break) and CSI (a terminal escape).
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def header_meta_key(header: str) -> str:
    """Return the ``request.META`` key of an HTTP header name:
    ``"HTTP_X_FORWARDED_FOR"`` for ``"X-Forwarded-For"``."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


def parse_ip(value: str) -> IPAddress | None:
    """Parse one address as proxies write it, or return ``None``.

    Accepts a bare address, ``[v6]:port``, ``v4:port`` and a v6 zone id;
    an IPv4-mapped IPv6 address is returned as IPv4.
    """
    value = value.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    value = value.partition("%")[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(request: HttpRequest) -> IPAddress | None:
    """Return the client's address, trusting only the configured proxies.

    With ``SESSIONKIT_TRUSTED_PROXY_COUNT = 0`` (the default) this is
    ``REMOTE_ADDR`` and any forwarding header is ignored, so a client cannot
    spoof it. With ``N`` trusted proxies, each of which appends the address it
    received the request from, the client is the ``N``-th entry from the right
    of ``SESSIONKIT_CLIENT_IP_HEADER``; entries further left were written by
    the client and are never used. A header with fewer than ``N`` entries did
    not pass through all the proxies and is ignored.
    """
    count = conf.TRUSTED_PROXY_COUNT
    if count > 0:
        header = request.META.get(header_meta_key(conf.CLIENT_IP_HEADER), "")
        hops = [hop for hop in str(header).split(",") if hop.strip()]
        if len(hops) >= count:
            return parse_ip(hops[-count])
    return parse_ip(str(request.META.get("REMOTE_ADDR", "")))


def ip_for_storage(ip: IPAddress | None) -> str | None:
    """Apply ``SESSIONKIT_STORE_IP`` to an address about to be stored.

    Return the address, its network address (its ``/24`` for IPv4, its
    ``/48`` for IPv6) when truncated, or ``None`` (no address, or none to be
    kept).
    """
    mode = conf.STORE_IP
    if ip is None or mode == "none":
        return None
    if mode == "truncated":
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
    return str(ip)


def user_agent_for_storage(request: HttpRequest) -> str:
    """Return the User-Agent to store: without control characters, at most
    :data:`~django_sessionkit.models.USER_AGENT_MAX_LENGTH` characters, or
    ``""`` when ``SESSIONKIT_STORE_USER_AGENT`` is ``False``."""
    if not conf.STORE_USER_AGENT:
        return ""
    # Bound the work before cleaning: a header can be many kilobytes long.
    raw = str(request.META.get("HTTP_USER_AGENT", ""))[: 4 * USER_AGENT_MAX_LENGTH]
    return _CONTROL_CHARS.sub("", raw)[:USER_AGENT_MAX_LENGTH]
