"""The location resolver (E022): importable, callable, and for GeoIP2 a
database to read."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from django_sessionkit.checks.base import TAG, imported
from django_sessionkit.conf import conf

GEOIP2_RESOLVER = "django_sessionkit.location.geoip2"


def _geoip2_problem() -> tuple[str, str] | None:
    """Why Django's GeoIP2 cannot work here, and the fix; ``None`` if it can."""
    try:
        import_module("geoip2.database")
    except ImportError:
        return (
            "the geoip2 package is not installed",
            "Run pip install geoip2 (and set GEOIP_PATH).",
        )
    if not getattr(settings, "GEOIP_PATH", None):
        return (
            "GEOIP_PATH is not set",
            "Set GEOIP_PATH to the directory holding MaxMind's "
            "GeoLite2-City.mmdb (or GeoLite2-Country.mmdb), or to the file.",
        )
    return None


@register(TAG)
def check_location_resolver(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse a location resolver that cannot work (E022), so the sessions
    page does not fail when it first shows a location."""
    from django_sessionkit import location

    path = conf.LOCATION_RESOLVER
    if path is None:
        return []
    resolver = imported(str(path))
    if not callable(resolver):
        return [
            Error(
                "SESSIONKIT_LOCATION_RESOLVER must be the dotted path of a "
                f"callable (ip) -> str | None; {path!r} cannot be imported or "
                "is not callable.",
                hint="Check the module and name; use "
                f'"{GEOIP2_RESOLVER}" for Django\'s GeoIP2, or remove the '
                "setting to show no locations.",
                id="sessionkit.E022",
            )
        ]
    problem = _geoip2_problem() if resolver is location.geoip2 else None
    if problem is None:
        return []
    reason, hint = problem
    return [
        Error(
            f"SESSIONKIT_LOCATION_RESOLVER is the GeoIP2 resolver, but {reason}.",
            hint=hint,
            id="sessionkit.E022",
        )
    ]
