"""Where an IP address is, in words: the ``SESSIONKIT_LOCATION_RESOLVER`` hook.

The sessions page shows a location beside each stored IP address when a
resolver is configured. Resolvers are called while the page renders, never on
the request path, and a resolver that fails costs the page its locations, not
the page itself.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from django_sessionkit.conf import conf

if TYPE_CHECKING:
    from django.contrib.gis.geoip2 import GeoIP2

logger = logging.getLogger(__name__)

#: The longest location shown; a longer one is cut to this many characters.
MAX_LENGTH = 100

#: What ``SESSIONKIT_LOCATION_RESOLVER`` names: ``(ip) -> location or None``.
Resolver = Callable[[str], "str | None"]

# Opening the database twice at once would be harmless but wasteful.
_geoip2_lock = threading.Lock()


def _import_resolver() -> Resolver | None:
    path = conf.LOCATION_RESOLVER
    if path is None:
        return None
    try:
        resolver = import_string(str(path))
    except Exception:  # any failure to import means "no resolver"
        # Remembered like a resolver, so this is logged once per process
        # (and again after the setting changes), not once per address.
        logger.warning(
            "SESSIONKIT_LOCATION_RESOLVER %r cannot be imported; no locations "
            "are shown.",
            path,
            exc_info=True,
        )
        return None
    if not callable(resolver):
        logger.warning(
            "SESSIONKIT_LOCATION_RESOLVER %r is not callable; no locations are shown.",
            path,
        )
        return None
    function: Resolver = resolver
    return function


def get_resolver() -> Resolver | None:
    """Return the configured resolver, or ``None`` when there is none.

    The dotted path is imported once and remembered until a setting changes.
    """
    resolver: Resolver | None = conf.derived("location:resolver", _import_resolver)
    return resolver


def resolve(ip: str | None) -> str | None:
    """Return where ``ip`` is, as the configured resolver names it, or ``None``.

    ``ip`` is passed as it is stored (with ``SESSIONKIT_STORE_IP =
    "truncated"``, the network's first address). ``None`` when there is no
    address, no resolver, or the resolver fails (logged as a warning on
    ``django_sessionkit.location``) or returns anything but a non-blank
    string; never raises. The result is stripped and cut to
    :data:`MAX_LENGTH` characters.
    """
    if not ip:
        return None
    resolver = get_resolver()
    if resolver is None:
        return None
    try:
        location: object = resolver(ip)
    except Exception:  # a location is a nicety: never break the page for it
        logger.warning(
            "SESSIONKIT_LOCATION_RESOLVER %r failed; the location is not shown.",
            conf.LOCATION_RESOLVER,
            exc_info=True,
        )
        return None
    if not isinstance(location, str):
        return None
    return location.strip()[:MAX_LENGTH].rstrip() or None


def _open_geoip2() -> GeoIP2:
    from django.contrib.gis.geoip2 import GeoIP2

    return GeoIP2()


def _geoip2_database() -> GeoIP2:
    with _geoip2_lock:
        database: GeoIP2 = conf.derived("location:geoip2", _open_geoip2)
    return database


def geoip2(ip: str) -> str | None:
    """Name the place of ``ip`` with Django's GeoIP2: "City, Country" or "Country".

    Use it as ``SESSIONKIT_LOCATION_RESOLVER =
    "django_sessionkit.location.geoip2"``; it needs the ``geoip2`` package
    and ``GEOIP_PATH``. The database is opened on the first call and kept
    until the settings change. Return ``None`` for a private, loopback or
    otherwise non-public address, an address the database does not know, and
    anything that is not an IP address (host names are never looked up).
    Raise ``GeoIP2Exception`` when the database cannot be opened.
    """
    try:
        address = ipaddress.ip_address(str(ip).strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not address.is_global:
        return None
    database = _geoip2_database()
    from django.contrib.gis.geoip2 import GeoIP2Exception
    from geoip2.errors import AddressNotFoundError

    city: str | None = None
    try:
        if database.is_city:
            found = database.city(str(address))
            city, country = found["city"], found["country_name"]
        else:
            country = database.country(str(address))["country_name"]
    except (AddressNotFoundError, GeoIP2Exception, ValueError):
        # ValueError: an IPv6 address asked of an IPv4-only database.
        return None
    if city and country:
        return f"{city}, {country}"
    return country or city or None
